"""Every finished cell of a paper-profile run, as markdown tables: one per model and attack, defenders across.

    .venv/bin/python bench/paper_cells.py [--out runs/paper-time] [--dataset mnist-5k]

Reads the run's cache (``<out>/<dataset>/cache``), so it works on a run that is still going or was cut off: a
cell not yet computed shows as "—". Rows: clean accuracy (M samples per test image), ASR of each attacker strategy
in % with its 95% interval by bootstrap over images (exact Clopper-Pearson over images at 0% and 100%), the share
the paper's attacker *believed* successful, and the wall seconds of each cell. Then the cell seconds per attacker.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.formatting import MISSING  # noqa: E402
from payoffs.cell import summarize_accuracy, summarize_cell  # noqa: E402

DEFENDERS = ("none", "dropout[r'=0.1]", "dropout[r'=0.3]", "dropout[r'=0.5]", "dropout[r'=0.7]",
             "dropout[r'=0.9]", "sap[frac=1]")
HEADERS = ("0 (none)", "0.1", "0.3", "0.5", "0.7", "0.9", "SAP")


def _records(cache: Path) -> list[dict]:
    out = []
    for path in sorted(cache.glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a file being written
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _order(label: str) -> tuple[float, str]:
    try:
        return float(label.split("=")[1].split()[0]), label
    except (IndexError, ValueError):
        return float("inf"), label


def tables(records: list[dict]) -> str:
    accuracy = {(r["model_label"], r["defender"]): summarize_accuracy(r) for r in records if r["kind"] == "accuracy"}
    cells: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for r in records:
        if r["kind"] == "cell":
            cells[(r["model_label"], r["attacker"])][r["defender"]] = {**summarize_cell(r), "record": r}
    lines = []
    models = sorted({m for m, _ in cells} | {m for m, _ in accuracy}, key=_order)
    for model in models:
        attackers = sorted(a for m, a in cells if m == model)
        lines += [f"**Model {model}**", "", "| r' | " + " | ".join(HEADERS) + " |",
                  "|---" * (len(HEADERS) + 1) + "|"]
        acc = [accuracy.get((model, d)) for d in DEFENDERS]
        lines.append("| clean accuracy % | " + " | ".join(MISSING if a is None else _pct(a["clean_accuracy"])
                                                          for a in acc) + " |")
        for attacker in attackers:
            row = [cells[(model, attacker)].get(d) for d in DEFENDERS]
            lines.append(f"| {attacker} ASR % | " + " | ".join(
                MISSING if c is None else f"{_pct(c['asr'])} [{_pct(c['asr_low'])}, {_pct(c['asr_high'])}]"
                for c in row) + " |")
            if "eot" not in attacker:
                lines.append(f"| {attacker} believed % | " + " | ".join(
                    MISSING if c is None else _pct(c["asr_believed"]) for c in row) + " |")
            lines.append(f"| {attacker} cell seconds | " + " | ".join(
                MISSING if c is None else f"{c['seconds']:.0f}" for c in row) + " |")
        lines.append("")
    per: dict[str, list[float]] = defaultdict(list)
    for (_, attacker), row in cells.items():
        per[attacker] += [c["seconds"] for c in row.values()]
    lines += ["| attacker | cells | cell seconds (sum) | mean | min-max |", "|---|---|---|---|---|"]
    for attacker, secs in sorted(per.items()):
        lines.append(f"| {attacker} | {len(secs)} | {sum(secs):,.0f} | {sum(secs) / len(secs):.0f} | "
                     f"{min(secs):.0f}-{max(secs):.0f} |")
    n_cells = sum(len(row) for row in cells.values())
    lines.append(f"\n{n_cells} attack cells and {len(accuracy)} clean-accuracy cells in the cache.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/paper-time"), help="bench/paper_profile.py's --out")
    parser.add_argument("--dataset", default="mnist-5k")
    args = parser.parse_args(argv)
    cache = args.out / args.dataset / "cache"
    if not cache.is_dir():
        print(f"error: {cache} not found: run bench/paper_profile.py first", file=sys.stderr)
        return 2
    print(tables(_records(cache)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
