"""One full paper-protocol payoff cell on this machine: the MNIST CNN (r = 0.3), C&W 10 x 100 with the
default step size, 100 images x 9 targets = 900 attacks, M = 20 defender samples, against test dropout r'.

Run: `.venv/bin/python bench/payoff.py [--test-dropout 0.5] [--n-images 100] [--eval-samples 20]`.
Trains (or reuses) the model under runs/bench/, uses a fresh cache so the cell is really computed, and prints
the cell's seconds split into attack and evaluation, with the row it produced. Target: under 600 s per cell.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from gameplay.strategies import attacker_space, defender_space
from payoffs.checkpoint import save_checkpoint
from payoffs.data import load_dataset
from payoffs.table import build_payoff_table, load_model_refs
from payoffs.training import TrainConfig, train


def model_path(root: Path) -> Path:
    path = root / "mnist5k-r0.3-e20.pt"
    if not path.is_file():
        result = train(load_dataset("mnist-5k"), TrainConfig(train_dropout=0.3, epochs=20, seed=0))
        save_checkpoint(path, result.model, {"dataset": "mnist-5k", "train_dropout": 0.3, "epochs": 20,
                                             "test_accuracy": result.test_accuracy, "seed": 0})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test-dropout", type=float, default=0.5)
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--eval-samples", type=int, default=20)
    parser.add_argument("--eot", type=int, default=1)
    args = parser.parse_args()
    refs = load_model_refs([model_path(Path("runs/bench"))])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {refs[0].hash} "
          f"(test accuracy {refs[0].meta.get('test_accuracy')})")
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        table = build_payoff_table(refs, attacker_space(["cw"], eot=[args.eot]),
                                   defender_space([args.test_dropout]), n_images=args.n_images,
                                   eval_samples=args.eval_samples, seed=0, cache_dir=cache)
        total = time.perf_counter() - start
    row = table.iloc[0]
    print(f"cell {row['attacker']} vs {row['defender']}: {int(row['n_attacks'])} attacks, M={args.eval_samples}")
    print(f"  cell seconds (attack + evaluation): {row['seconds']:.1f}")
    print(f"  total incl. clean accuracy on the test split: {total:.1f} s")
    print(f"  asr {row['asr']:.4f} [{row['asr_low']:.4f}, {row['asr_high']:.4f}], "
          f"believed {row['asr_believed']:.4f}, "
          f"majority {row['asr_majority']:.4f}, l2_mean {row['l2_mean']:.3f}, "
          f"clean accuracy {row['clean_accuracy']:.4f}")
    print(f"  target: < 600 s per cell -> {'met' if row['seconds'] < 600 else 'NOT met'}")


if __name__ == "__main__":
    main()
