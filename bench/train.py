"""Training benchmark: the paper's MNIST CNN (r = 0.3, default epochs) on mnist-5k and full Fashion-MNIST.

Prints test accuracy and seconds per epoch on this machine. Run: `.venv/bin/python bench/train.py`
(`--datasets mnist-5k` for the quick half; `--epochs-fashion N` to change the Fashion-MNIST budget).
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from payoffs.data import load_dataset
from payoffs.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="mnist-5k,fashion-mnist")
    parser.add_argument("--epochs-mnist5k", type=int, default=20)
    parser.add_argument("--epochs-fashion", type=int, default=10)
    parser.add_argument("--train-dropout", type=float, default=0.3)
    args = parser.parse_args()
    epochs = {"mnist-5k": args.epochs_mnist5k, "fashion-mnist": args.epochs_fashion}
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'dataset':<14} {'train':>6} {'test':>6} {'r':>4} {'epochs':>6} {'s/epoch':>8} {'accuracy':>9}")
    for name in args.datasets.split(","):
        t0 = time.perf_counter()
        data = load_dataset(name)
        load_s = time.perf_counter() - t0
        result = train(data, TrainConfig(train_dropout=args.train_dropout, epochs=epochs[name], seed=0))
        print(f"{name:<14} {len(data.x_train):>6} {len(data.x_test):>6} {args.train_dropout:>4} "
              f"{result.epochs:>6} {result.seconds_per_epoch:>8.1f} {result.test_accuracy:>9.4f}"
              f"   (load {load_s:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
