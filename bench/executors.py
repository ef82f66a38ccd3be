"""The Dask path against the local one, side by side on this machine (issue 15's targets).

1. Per-cell overhead: the same K tiny FGSM cells (1 image x 9 targets, M = 1) run in this process (the local
   executor at --jobs 1) and on a local Dask cluster of one worker process (scheduler, TCP on 127.0.0.1, the
   model's bytes and the test split shipped once, each record sent back); both warmed by one cell first, both at
   one torch thread. Overhead per cell = (Dask seconds - local seconds) / K. Target: under 0.5 s.
   The time outside the cells (wall minus the cells' own seconds) is printed too: it does not move with the
   machine's load as much as the walls do.
2. Scaling: the same >= 8 small C&W cells on a Dask cluster of 1 worker and of 2 workers (ratio of wall times;
   2.0 is perfect on two idle cores), beside local --jobs 1 and --jobs 2 as the control.

Run: `.venv/bin/python bench/executors.py [--cells 16] [--scaling-cells 8]`. It trains a one-epoch model in a
temporary folder. Startup times (cluster, first cell) are printed apart: they are paid once per sweep.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from gameplay.strategies import attacker_space, defender_space
from payoffs.cell import CellSpec, run_cell
from payoffs.checkpoint import save_checkpoint
from payoffs.dask_executor import DaskExecutor
from payoffs.data import load_dataset
from payoffs.executor import InProcessExecutor, ProcessExecutor, available_cores
from payoffs.sources import DataSource
from payoffs.table import load_model_refs
from payoffs.training import TrainConfig, train

TARGET_OVERHEAD = 0.5  # seconds per cell (issue 15)


def model(root: Path):
    path = root / "m.pt"
    result = train(load_dataset("mnist-5k"), TrainConfig(train_dropout=0.3, epochs=1, seed=0))
    save_checkpoint(path, result.model, {"dataset": "mnist-5k", "train_dropout": 0.3, "epochs": 1})
    return load_model_refs([path])[0]


def cells(source, attackers, n: int, n_images: int, samples: int) -> list:
    """``n`` distinct cells: the attackers against dropout rates r' spread over (0, 0.9)."""
    rates = [round(0.9 * (i + 1) / (n + 1), 4) for i in range(n)]
    return [(run_cell, CellSpec(source, DataSource("mnist-5k"), attackers[i % len(attackers)],
                                defender_space([r])[0], n_images, samples, seed=0)) for i, r in enumerate(rates)]


def timed(executor, jobs) -> tuple[float, float]:
    """(wall seconds, the cells' own seconds summed): run one after another, their difference is what the
    executor adds (scheduling, shipping specs and records, idle gaps)."""
    start = time.perf_counter()
    records = [record for _, record in executor.run(jobs)]
    assert len(records) == len(jobs)
    return time.perf_counter() - start, sum(r["seconds"] for r in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=16, help="tiny cells for the overhead (K)")
    parser.add_argument("--scaling-cells", type=int, default=8, help="cells for the 1-vs-2-worker ratio (>= 8)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {available_cores()} core(s), load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (a loaded machine inflates every number)")
    with tempfile.TemporaryDirectory() as tmp:
        source = model(Path(tmp))
        fgsm = attacker_space(["fgsm"])
        tiny = cells(source, fgsm, args.cells, 1, 1)
        warm = cells(source, fgsm, 1, 1, 1)

        local = InProcessExecutor()
        timed(local, warm)
        runs: dict[str, list[tuple[float, float]]] = {"local": [], "dask": []}
        start = time.perf_counter()
        with DaskExecutor(n_workers=1) as dask1:
            t_start = time.perf_counter() - start
            t_first = timed(dask1, warm)[0]
            for _ in range(2):  # alternated, so the machine's drifting load falls on both alike
                runs["local"].append(timed(local, tiny))
                runs["dask"].append(timed(dask1, tiny))
        k = len(tiny)
        wall = {name: min(w for w, _ in r) for name, r in runs.items()}
        outside = {name: min(w - c for w, c in r) / k for name, r in runs.items()}
        print(f"\n1. per-cell overhead, {k} tiny FGSM cells (1 image x 9 targets, M = 1), 1 torch thread, runs "
              f"alternated")
        for name, label in (("local", "local (in process)"), ("dask", "Dask, 1 worker process")):
            print(f"   {label:24s} wall {', '.join(f'{w:.2f}' for w, _ in runs[name])} s "
                  f"({wall[name] / k:.3f} s/cell); outside the cells {outside[name]:.3f} s/cell")
        by_wall = (wall["dask"] - wall["local"]) / k
        by_outside = outside["dask"] - outside["local"]
        print(f"   overhead per cell: (Dask wall - local wall) / cells = {by_wall:+.3f} s; time outside the cells, "
              f"Dask - local = {by_outside:+.3f} s (target < {TARGET_OVERHEAD} s: "
              f"{'met' if max(by_wall, by_outside) < TARGET_OVERHEAD else 'NOT met'})")
        print(f"   paid once per sweep: local cluster start {t_start:.1f} s, first cell on it {t_first:.1f} s "
              f"(the worker imports torch and builds the model)")

        cw = attacker_space(["cw"], {"search_steps": [2], "iterations": [20]})
        scaling = cells(source, cw, max(8, args.scaling_cells), 2, 4)
        walls: dict[str, list[float]] = {}
        busy: dict[str, list[float]] = {}
        with DaskExecutor(n_workers=1) as one, DaskExecutor(n_workers=2) as two:
            executors = {"Dask, 1 worker": one, "Dask, 2 workers": two,
                         "local --jobs 1": InProcessExecutor(), "local --jobs 2": ProcessExecutor(2, cores=2)}
            for name in ("Dask, 1 worker", "Dask, 2 workers"):
                timed(executors[name], cells(source, cw, 2, 1, 1))  # every worker warmed
            for _ in range(2):  # alternated, so the machine's drifting load falls on all alike
                for name, executor in executors.items():
                    wall, own = timed(executor, scaling)
                    walls.setdefault(name, []).append(wall)
                    busy.setdefault(name, []).append(own)
        print(f"\n2. scaling, {len(scaling)} C&W cells (2 x 20, 2 images x 9 targets, M = 4), 1 torch thread each, "
              f"runs alternated; local --jobs 2 starts its 2 processes in every run")
        for name in executors:
            print(f"   {name:16s} wall {', '.join(f'{w:.1f}' for w in walls[name])} s; cells' own seconds summed "
                  f"{', '.join(f'{b:.1f}' for b in busy[name])} s (parallelism "
                  f"{', '.join(f'{b / w:.2f}' for b, w in zip(busy[name], walls[name]))})")
        dask_ratio = min(walls["Dask, 1 worker"]) / min(walls["Dask, 2 workers"])
        local_ratio = min(walls["local --jobs 1"]) / min(walls["local --jobs 2"])
        print(f"   speed-up of 2 workers over 1 (best runs): Dask {dask_ratio:.2f}x, local processes "
              f"{local_ratio:.2f}x (2.00x is perfect on two idle cores). Parallelism near 2 with a smaller "
              f"speed-up means each cell ran slower because the cores were busy with other work.")
        print(f"   load average now {', '.join(f'{x:.1f}' for x in os.getloadavg())}")

if __name__ == "__main__":
    main()
