"""Solver benchmark: every solver on a random 30 x 60 game, and a synthetic 30 x 60 payoff table through the whole
``solve_payoff_csv`` path (CSV read, all solvers, 200 robustness resamples), then the HTML page.

Prints seconds per solver. Run: `.venv/bin/python bench/solve.py` (`--rows/--cols` to change the size,
`--repeat` to take the best of several runs). Target: the whole solve under 5 s, Nash included.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def best_of(repeat: int, fn):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--cols", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-accuracy-drop", type=float, default=0.05)
    args = parser.parse_args()

    import nashpy
    import scipy

    from analysis.solve_report import write_solve_report_html
    from analysis.solve_text import headline
    from gameplay.game import Game
    from gameplay.regret import is_equilibrium
    from gameplay.solve import NASH_OPTIONS, solve_payoff_csv
    from gameplay.synthetic import synthetic_payoff_table

    m, n = args.rows, args.cols
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"nashpy {nashpy.__version__}; best of {args.repeat}")
    rng = np.random.default_rng(args.seed)
    general = Game(rng.random((m, n)), rng.random((m, n)))
    zero_sum = Game(rng.random((m, n)))
    print(f"\nrandom {m} x {n} games (general-sum for Nash and Stackelberg, zero-sum for minimax):")
    rows = [
        ("best responses", lambda: general.best_responses()),
        ("minimax (HiGHS LP)", lambda: zero_sum.minimax()),
        ("minimax (nashpy linear_program)", lambda: zero_sum.minimax("nashpy")),
        ("Stackelberg (multiple LPs)", lambda: general.stackelberg()),
        ("Stackelberg, zero-sum game", lambda: zero_sum.stackelberg()),
        ("Nash (Lemke-Howson, all labels)", lambda: general.nash(**NASH_OPTIONS)),
    ]
    for name, fn in rows:
        seconds, out = best_of(args.repeat, fn)
        extra = ""
        if name.startswith("Nash"):
            ok = all(is_equilibrium(general.A, general.B, e.x, e.y) for e in out.equilibria)
            extra = (f"  {len(out.equilibria)} equilibria from {len(out.labels)} labels, {len(out.timed_out)} timed "
                     f"out, all pass the regret check: {ok}")
        print(f"  {name:<34} {seconds:8.3f} s{extra}")

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "payoff.csv"
        synthetic_payoff_table(m, n, seed=args.seed).to_csv(csv, index=False)
        seconds, report = best_of(args.repeat, lambda: solve_payoff_csv(
            csv, max_accuracy_drop=args.max_accuracy_drop, robustness_samples=200, seed=args.seed))
        print(f"\nsynthetic {m} x {n} payoff table through solve_payoff_csv (epsilon {args.max_accuracy_drop:g}, "
              f"game {len(report.game_rows)} x {n}, {report.kind}, solver all, 200 resamples):")
        for name, s in report.seconds:
            print(f"  {name:<34} {s:8.3f} s")
        print(f"  {'total (CSV read included)':<34} {seconds:8.3f} s   target < 5 s: "
              f"{'met' if seconds < 5 else 'MISSED'}")
        nash = report.nash
        print(f"  Nash: {len(nash.equilibria)} equilibria, {len(nash.timed_out)} labels timed out; recommendation: "
              f"{headline(report.recommendation)}")
        seconds, _ = best_of(1, lambda: write_solve_report_html(report, Path(tmp) / "report.html"))
        size = (Path(tmp) / "report.html").stat().st_size / 1e6
        print(f"  HTML report                        {seconds:8.3f} s   ({size:.1f} MB, plotly.js embedded)")


if __name__ == "__main__":
    main()
