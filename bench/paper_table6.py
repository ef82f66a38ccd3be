"""The paper profile's Table 6 cells first: C&W at full protocol on the r = 0.3 model, one defender at a time.

The full ``reproduce --profile paper`` run (``bench/paper_profile.py``) goes model by model; on a CPU that is
days. This runs the cells the paper's headline rests on first, in the order of their value, into the *same*
cache as the full run (same model files, strategies, N, M and seed, hence the same cell keys), so the full run
reuses them when it resumes::

    OMP_NUM_THREADS=1 nice -n 10 python bench/paper_table6.py --out runs/paper-time --jobs 2

Order: the paper's C&W at r' = 0.1, 0.3, 0.5 (Table 6), the adaptive C&W at r' = 0.3, 0.5, then the rest of
the r = 0.3 row (r' = 0, 0.7, 0.9, SAP) for both attackers. Each finished cell prints its wall time; Ctrl-C or
SIGTERM keeps every finished cell.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.reproduce import PROFILES, adaptive_attacker, defenders, paper_attacker  # noqa: E402
from payoffs.strategy import DefenderStrategy  # noqa: E402
from payoffs.table import build_payoff_table, load_model_refs  # noqa: E402

TRAIN_RATE = 0.3  # Table 6's model
FIRST = ((False, (0.1, 0.3, 0.5, 0.0)), (True, (0.3, 0.5)))  # (adaptive, r'), most wanted first


def order(profile) -> list[tuple[bool, list[DefenderStrategy]]]:
    """(adaptive?, defenders) groups: :data:`FIRST`, then every other defender of the profile, paper attacker
    first."""
    first = [(a, [DefenderStrategy.dropout(r) for r in rates]) for a, rates in FIRST]
    done = {(a, d) for a, ds in first for d in ds}
    rest = [(a, [d for d in defenders(profile) if (a, d) not in done]) for a in (False, True)]
    return first + [(a, ds) for a, ds in rest if ds]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/paper-time"), help="bench/paper_profile.py's --out")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    profile = PROFILES["paper"]
    run_dir = args.out / args.dataset
    model = run_dir / "models" / f"{args.dataset}-r{TRAIN_RATE:g}-e{profile.epochs}-s{args.seed}.pt"
    if not model.is_file():
        print(f"error: {model} not found: train it first (bench/paper_profile.py trains every model)")
        return 2
    refs = load_model_refs([model])
    step = max(1, args.jobs)  # --jobs defenders per call: the workers stay busy and the order holds
    for adaptive, group in order(profile):
        attacker = (adaptive_attacker if adaptive else paper_attacker)("cw", profile)
        for i in range(0, len(group), step):
            chosen = group[i:i + step]
            started = time.monotonic()
            table = build_payoff_table(refs, [attacker], chosen, n_images=profile.n_images,
                                       eval_samples=profile.eval_samples, seed=args.seed,
                                       cache_dir=run_dir / "cache", jobs=min(args.jobs, len(chosen)),
                                       device=args.device)
            for row in table.itertuples():
                print(f"{time.strftime('%H:%M:%S')} {attacker.id} vs {row.defender}: ASR {100 * row.asr:.1f}% "
                      f"[{100 * row.asr_low:.1f}, {100 * row.asr_high:.1f}], clean accuracy "
                      f"{100 * row.clean_accuracy:.1f}% (call {time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
