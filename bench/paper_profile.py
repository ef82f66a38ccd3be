"""Measure ``defdrop reproduce --profile paper``: wall time per dataset, stage by stage and cell by cell.

Runs the real command (one process per dataset, side by side or one after the other) under a deadline. At the
deadline each run gets SIGTERM (handled like Ctrl-C), which keeps every finished cell, so a cut-off run still
yields measured cell times; the summary then gives the measured part and, separately and labelled as such, an
extrapolation of the rest from the measured mean time of each attacker strategy::

    python bench/paper_profile.py --datasets mnist-5k,fashion-mnist --deadline 3600 --out runs/paper-time

Rerunning with the same ``--out`` resumes (trained models and finished cells are reused; their time is not
counted again, so measure from an empty ``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from analysis.reproduce import PROFILES, adaptive_attacker, defenders, machine_description, paper_attacker  # noqa: E402
from payoffs.checkpoint import load_checkpoint  # noqa: E402


def planned_cells(profile_name: str) -> dict[str, int]:
    """Attack cells per attacker id in the profile (every sweep's models x defenders)."""
    profile = PROFILES[profile_name]
    counts: dict[str, int] = defaultdict(int)
    for sweep in profile.sweeps:
        for attack in sweep.attacks:
            for make in (paper_attacker, adaptive_attacker):
                counts[make(attack, profile).id] += len(sweep.train_rates) * len(defenders(profile))
    return dict(counts)


def finished_cells(cache_dir: Path) -> list[dict]:
    records = []
    for path in sorted(cache_dir.glob("*.json")) if cache_dir.is_dir() else []:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return records


def summarize(dataset: str, out: Path, profile_name: str, wall: float, returncode: int | None, jobs: int) -> dict:
    """Measured stage and cell times; the unfinished rest extrapolated per attacker id (marked as such)."""
    records = finished_cells(out / "cache")
    cells = [r for r in records if isinstance(r, dict) and r.get("kind") == "cell"]
    accuracy = [r for r in records if isinstance(r, dict) and r.get("kind") == "accuracy"]
    by_attacker: dict[str, list[float]] = defaultdict(list)
    for r in cells:
        by_attacker[r.get("attacker", "?")].append(float(r["seconds"]))
    plan = planned_cells(profile_name)
    rows, remaining, unknown = [], 0.0, []
    for attacker, n_planned in plan.items():
        done = by_attacker.get(attacker, [])
        mean = sum(done) / len(done) if done else None
        if mean is None:
            unknown.append(attacker)
        else:
            remaining += mean * max(0, n_planned - len(done))
        rows.append({"attacker": attacker, "planned": n_planned, "finished": len(done),
                     "cell_seconds_sum": round(sum(done), 1), "cell_seconds_mean": mean and round(mean, 1)})
    run = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else None
    trained = {}
    for path in sorted((out / "models").glob("*.pt")) if (out / "models").is_dir() else []:
        _, meta = load_checkpoint(path)
        trained[path.name] = {k: meta.get(k) for k in ("test_accuracy", "seconds_per_epoch", "epochs")}
    return {
        "dataset": dataset, "profile": profile_name, "finished": run is not None and returncode == 0,
        "returncode": returncode, "wall_seconds": round(wall, 1), "jobs": jobs,
        "stages": run["seconds"] if run else None, "device": run.get("device_description") if run else None,
        "models": trained,
        "accuracy_cells": len(accuracy), "accuracy_seconds_sum": round(sum(r["seconds"] for r in accuracy), 1),
        "attack_cells": len(cells), "attack_cells_planned": sum(plan.values()),
        "cell_seconds_sum": round(sum(r["seconds"] for r in cells), 1), "per_attacker": rows,
        "extrapolated_remaining_cell_seconds": None if run else round(remaining, 1),
        "extrapolated_remaining_wall_seconds": None if run else round(remaining / jobs, 1),
        "no_measurement_for": unknown,
    }


def here() -> str:
    """This machine, for a cut-off run (a finished run records its own in run.json)."""
    return machine_description("cuda" if torch.cuda.is_available() else "cpu")


def record_segment(out: Path, dataset: str, wall: float, summary: dict) -> list[dict]:
    """Append this invocation to ``<out>/<dataset>.segments.json``: a run resumed over several invocations
    (or sessions) is measured as the sum of its segments' wall times."""
    path = out / f"{dataset}.segments.json"
    segments = json.loads(path.read_text()) if path.is_file() else []
    segments.append({"ended": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_seconds": round(wall, 1),
                     "finished": summary["finished"], "attack_cells": summary["attack_cells"],
                     "models": len(summary["models"]), "device": summary["device"] or here(), "jobs": summary["jobs"]})
    path.write_text(json.dumps(segments, indent=2))
    return segments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="mnist-5k,fashion-mnist")
    parser.add_argument("--profile", default="paper", choices=sorted(PROFILES))
    parser.add_argument("--out", type=Path, default=Path("runs/paper-time"))
    parser.add_argument("--deadline", type=float, default=3600.0, help="seconds before every run gets Ctrl-C")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=900)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", action="append", default=[], metavar="DATASET=DIR")
    parser.add_argument("--sequential", action="store_true", help="one dataset after the other")
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.data_dir):
        parser.error("--data-dir takes DATASET=DIR, e.g. fashion-mnist=/usr/share/datasets/fashion-mnist")
    data_dirs = dict(item.split("=", 1) for item in args.data_dir)
    datasets = [d for d in args.datasets.split(",") if d]
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    deadline = start + args.deadline

    def launch(dataset: str) -> tuple[subprocess.Popen, float]:
        cmd = [sys.executable, "-m", "cli", "reproduce", "--profile", args.profile, "--dataset", dataset,
               "--out", str(args.out / dataset), "--jobs", str(args.jobs), "--batch-size", str(args.batch_size),
               "--device", args.device]
        if dataset in data_dirs:
            cmd += ["--data-dir", data_dirs[dataset]]
        log = open(args.out / f"{dataset}.log", "a")  # a resumed run's segments follow each other
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
        print(f"{time.strftime('%H:%M:%S')} start {dataset}: {' '.join(cmd[1:])}", flush=True)
        return (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True),
                time.perf_counter())

    def wait(proc: subprocess.Popen) -> int:
        try:
            return proc.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            # SIGTERM, handled like Ctrl-C (finished cells kept, exit 143); SIGINT is ignored by commands started
            # in the background of a non-interactive shell, and so by this run's children.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                return proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                return proc.wait()

    summaries = []
    if args.sequential:
        for dataset in datasets:
            proc, t0 = launch(dataset)
            code = wait(proc)
            summaries.append(summarize(dataset, args.out / dataset, args.profile, time.perf_counter() - t0, code,
                                       args.jobs))
            print(json.dumps(summaries[-1]), flush=True)
    else:
        running = [(d, *launch(d)) for d in datasets]
        for dataset, proc, t0 in running:
            code = wait(proc)
            summaries.append(summarize(dataset, args.out / dataset, args.profile, time.perf_counter() - t0, code,
                                       args.jobs))
            print(json.dumps(summaries[-1]), flush=True)
    for s in summaries:
        segments = record_segment(args.out, s["dataset"], s["wall_seconds"], s)
        s["segments"] = len(segments)
        s["wall_seconds_all_segments"] = round(sum(g["wall_seconds"] for g in segments), 1)
    (args.out / "summary.json").write_text(json.dumps(summaries, indent=2))
    for s in summaries:
        state = "finished" if s["finished"] else f"cut off (exit {s['returncode']})"
        epochs = ", ".join(f"{m['seconds_per_epoch']:.1f}" for m in s["models"].values())
        print(f"\n{s['dataset']}: {state} after {s['wall_seconds']:.0f} s wall "
              f"({s['wall_seconds_all_segments']:.0f} s over {s['segments']} segment(s)), --jobs {s['jobs']}; "
              f"models {len(s['models'])} (s/epoch: {epochs}); accuracy cells {s['accuracy_cells']}; attack cells "
              f"{s['attack_cells']}/{s['attack_cells_planned']}; stages {s['stages']}")
        print(f"  {'attacker':44s} {'done':>9s} {'sum s':>9s} {'mean s':>8s}")
        for row in s["per_attacker"]:
            mean = "-" if row["cell_seconds_mean"] is None else f"{row['cell_seconds_mean']:.1f}"
            print(f"  {row['attacker']:44s} {row['finished']:>4d}/{row['planned']:<4d} "
                  f"{row['cell_seconds_sum']:>9.1f} {mean:>8s}")
        if not s["finished"]:
            print(f"  extrapolated (not measured): remaining cells ~{s['extrapolated_remaining_cell_seconds']:.0f} "
                  f"cell-seconds, ~{s['extrapolated_remaining_wall_seconds']:.0f} s wall at --jobs {s['jobs']}; "
                  f"no measurement yet for {s['no_measurement_for'] or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
