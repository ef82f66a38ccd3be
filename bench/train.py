"""Training benchmark: the paper's MNIST CNN (r = 0.3) on mnist-5k and full Fashion-MNIST, and the cost of each
training recipe as a ratio to standard training, measured side by side in one run.

Prints test accuracy and seconds per epoch on this machine. Run: `.venv/bin/python bench/train.py`
(`--only datasets` or `--only recipes` for one half; `--datasets mnist-5k` for the quick datasets half;
`--epochs-fashion N` to change the Fashion-MNIST budget; `--recipe-epochs N` and `--train-images N` for the recipe
comparison).

The recipe comparison trains on mnist-5k with every recipe at its declared defaults (PGD: eps 0.3, 40 steps of
0.01; FGSM; distillation T = 100 with a teacher of the same epochs) for the same number of epochs. Standard
training runs before and after each recipe and the ratios divide by the median of those runs, so one burst of
load from another job on a shared machine does not set the baseline (the spread of the standard runs is printed).
The seconds are the training loop's (``TrainResult.seconds``), without the final test-accuracy pass.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from payoffs.data import Dataset, load_dataset
from payoffs.errors import DefdropError
from payoffs.recipes import recipe_params_from_text
from payoffs.training import TrainConfig, train

DEFAULT_RECIPES = "adversarial,adversarial:method=fgsm,distillation"


def parse_recipe_spec(spec: str) -> tuple[str, dict]:
    """``adversarial:method=fgsm:eps=0.1`` -> ``("adversarial", {"method": "fgsm", "eps": 0.1})`` (checked)."""
    name, _, rest = spec.partition(":")
    return name.strip(), recipe_params_from_text(name.strip(), [p for p in rest.split(":") if p])


def bench_datasets(args: argparse.Namespace) -> None:
    epochs = {"mnist-5k": args.epochs_mnist5k, "fashion-mnist": args.epochs_fashion}
    print(f"{'dataset':<14} {'train':>6} {'test':>6} {'r':>4} {'epochs':>6} {'s/epoch':>8} {'accuracy':>9}")
    for name in args.datasets.split(","):
        t0 = time.perf_counter()
        data = load_dataset(name)
        load_s = time.perf_counter() - t0
        result = train(data, TrainConfig(train_dropout=args.train_dropout, epochs=epochs[name], seed=0))
        print(f"{name:<14} {len(data.x_train):>6} {len(data.x_test):>6} {args.train_dropout:>4} "
              f"{result.epochs:>6} {result.seconds_per_epoch:>8.1f} {result.test_accuracy:>9.4f}"
              f"   (load {load_s:.1f} s)", flush=True)


def bench_recipes(args: argparse.Namespace) -> None:
    specs = [parse_recipe_spec(s) for s in args.recipes.split(",") if s.strip()]
    specs = [s for s in specs if s != ("standard", {})]
    data = load_dataset("mnist-5k")
    if args.train_images:
        data = Dataset(data.name, data.x_train[:args.train_images], data.y_train[:args.train_images], data.x_test,
                       data.y_test)
    print(f"\nrecipes on mnist-5k ({len(data.x_train)} training images), r = {args.train_dropout}, "
          f"{args.recipe_epochs} epochs each, seed 0, same run; standard training runs before and after each "
          f"recipe, and the ratios divide by the median of those standard runs")
    print(f"{'recipe':<38} {'seconds':>8} {'accuracy':>9}")

    def run(name: str, params: dict) -> tuple[str, float, float]:
        config = TrainConfig(train_dropout=args.train_dropout, epochs=args.recipe_epochs, seed=0, recipe=name,
                             recipe_params=params)
        result = train(data, config)
        print(f"{result.recipe_label:<38} {result.seconds:>8.1f} {result.test_accuracy:>9.4f}", flush=True)
        return result.recipe_label, result.seconds, result.test_accuracy

    run("standard", {})  # warm-up (thread pools, allocator), not counted
    standard = [run("standard", {})[1]]
    rows = []
    for name, params in specs:
        rows.append(run(name, params))
        standard.append(run("standard", {})[1])
    base = statistics.median(standard)
    print(f"\nstandard training: median {base:.1f} s over {len(standard)} runs (from {min(standard):.1f} to "
          f"{max(standard):.1f} s)")
    for label, seconds, acc in rows:
        print(f"{label:<38} {seconds / base:>6.1f}x standard training   (test accuracy {100 * acc:.1f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("datasets", "recipes"), default=None)
    parser.add_argument("--datasets", default="mnist-5k,fashion-mnist")
    parser.add_argument("--epochs-mnist5k", type=int, default=20)
    parser.add_argument("--epochs-fashion", type=int, default=10)
    parser.add_argument("--train-dropout", type=float, default=0.3)
    parser.add_argument("--recipes", default=DEFAULT_RECIPES,
                        help=f"comma-separated NAME[:PARAM=VALUE[:PARAM=VALUE...]], each compared with standard "
                             f"training (default {DEFAULT_RECIPES})")
    parser.add_argument("--recipe-epochs", type=int, default=2, help="epochs of each recipe run (default 2)")
    parser.add_argument("--train-images", type=int, default=0,
                        help="train the recipes on the first N training images only (0: all 4,000); the ratios "
                             "are per-image costs, so a subset measures them faster on a busy machine")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    try:
        if args.only in (None, "datasets"):
            bench_datasets(args)
        if args.only in (None, "recipes"):
            bench_recipes(args)
    except DefdropError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
