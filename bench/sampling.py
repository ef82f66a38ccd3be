"""Defender samples for the price of the layers they touch: issue 14's targets, measured side by side.

    .venv/bin/python bench/sampling.py [--quick] [--items 1,3] [--threads N]

Prints, on the paper's MNIST CNN (mnist-5k, r = 0.3; trained once into runs/bench/), each as a ratio of two
timings taken in the same run:

1. C&W time per Adam step at EOT 8 against EOT 1 on the same 900 examples (target <= 1.3x), and the old repeat
   path at EOT 8 for reference;
2. the M = 20 evaluation of 900 examples against one deterministic forward pass of them (target <= 2x);
3. the adaptive paper-protocol cell (C&W 10 x 100, EOT 8, expected, kappa 5, 900 attacks, M = 20) against the same
   strategy at EOT 1 (target <= 1.5x; skipped with --quick);
4. a clean-accuracy cell on mnist-5k (1,000 images, M = 20) in seconds (target <= 2 s);
5. CPU pass sizes for EOT 8 steps (what CPU_FORWARD_IMAGES is set from);
6. per-sample input gradients (gradvar): repeating the input against a vectorized backward over a shared forward;
7. the EOT 8 C&W step with the model's convolutions in channels-last memory (how models load for inference on a
   CPU, payoffs.device.for_inference) against the contiguous layout.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from payoffs import noise  # noqa: E402
from payoffs.attacks import base as attack_base  # noqa: E402
from payoffs.attacks.objectives import cw_margin  # noqa: E402
from payoffs.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from payoffs.data import load_dataset  # noqa: E402
from payoffs.defenses import TestTimeDropout  # noqa: E402
from payoffs.models import with_defense  # noqa: E402
from payoffs.sampling import sample_input_gradients, sample_logits  # noqa: E402
from payoffs.training import TrainConfig, train  # noqa: E402


def model_path(root: Path) -> Path:
    path = root / "mnist5k-r0.3-e10.pt"
    if not path.is_file():
        result = train(load_dataset("mnist-5k"), TrainConfig(train_dropout=0.3, epochs=10, seed=0))
        save_checkpoint(path, result.model, {"dataset": "mnist-5k", "train_dropout": 0.3, "epochs": 10})
    return path


def best_of(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cw_step(net, x, t, k: int, chunk: int, split: bool = True) -> None:
    """One C&W Adam step's model work (forward + input gradient of the hinge) over the batch, in passes."""
    for i in range(0, len(x), chunk):
        xv = x[i:i + chunk].clone().requires_grad_(True)
        keys = noise.row_keys(0, torch.arange(i, i + len(xv)), noise.ATTACK, 1)
        logits = sample_logits(net, xv, k, keys, split=split)
        f = cw_margin(logits, t[i:i + chunk].expand(k, -1)).clamp_min(0).mean(0).sum()
        torch.autograd.grad(f, [xv])


ITEMS = (1, 2, 3, 4, 5, 6, 7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip item 3 (the two full paper-protocol cells)")
    parser.add_argument("--items", default=",".join(map(str, ITEMS)), help="which items to measure, e.g. 1,3")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    items = {int(i) for i in args.items.split(",") if i.strip()} - ({3} if args.quick else set())
    if not items <= set(ITEMS):
        parser.error(f"--items: choose from {', '.join(map(str, ITEMS))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _ = load_checkpoint(model_path(ROOT / "runs" / "bench"))
    data = load_dataset("mnist-5k")
    net = with_defense(model, TestTimeDropout(0.5))
    x, y = data.x_test[:900], data.y_test[:900]
    t = (y + 1) % 10
    chunk = attack_base.CPU_FORWARD_IMAGES
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU passes of {chunk} inputs")

    if 1 in items:
        one = best_of(lambda: cw_step(net, x, t, 1, chunk))
        eight = best_of(lambda: cw_step(net, x, t, 8, chunk))
        repeat = best_of(lambda: cw_step(net, x, t, 8, chunk, split=False), repeats=1)
        print(f"1. C&W step, 900 examples: EOT 1 {one:.3f} s, EOT 8 {eight:.3f} s -> {eight / one:.2f}x "
              f"(target <= 1.3x); EOT 8 by repeating the input {repeat:.3f} s ({repeat / one:.1f}x)")

    if 2 in items:
        from payoffs.evaluation import sampled_correct

        with torch.no_grad():
            plain = best_of(lambda: model(x))
        m20 = best_of(lambda: sampled_correct(net, x, t, 20, seed=0))
        print(f"2. M = 20 evaluation of 900 examples {m20:.3f} s vs one deterministic forward {plain:.3f} s -> "
              f"{m20 / plain:.2f}x (target <= 2x)")

    from gameplay.strategies import attacker_space
    from payoffs.cell import AccuracySpec, CellSpec, run_accuracy, run_cell
    from payoffs.sources import DataSource
    from payoffs.strategy import DefenderStrategy
    from payoffs.table import load_model_refs

    source = load_model_refs([model_path(ROOT / "runs" / "bench")])[0]
    if 4 in items:
        spec = AccuracySpec(source, DataSource("mnist-5k"), DefenderStrategy.dropout(0.5), 20, 0)
        run_accuracy(spec)
        acc = best_of(lambda: run_accuracy(spec), repeats=2)
        print(f"4. clean-accuracy cell, 1,000 images x M = 20: {acc:.2f} s (target <= 2 s)")

    if 5 in items:
        print("5. CPU pass size for EOT 8 C&W steps (900 examples):")
        for size in (64, 128, 256, 512, 900):
            seconds = best_of(lambda size=size: cw_step(net, x, t, 8, size), repeats=2)
            print(f"   {size:>4} inputs per pass: {seconds:.3f} s")

    if 6 in items:
        xs = x[:20]

        def objective(logits):
            return cw_margin(logits, t[:20].repeat(50))

        keys = noise.row_keys(0, torch.arange(20), 4)
        rep = best_of(lambda: sample_input_gradients(net, xs, 50, keys, objective), 2)

        def vectorized() -> None:
            split = net.split
            boundary, vjp = torch.func.vjp(lambda v: tuple(split.trunk(v)), xs)
            copies = tuple(b.detach().repeat(50, 1).requires_grad_(True) for b in boundary)
            with noise.keyed(noise.copies(keys, 50)):
                values = objective(split.head(net.defense, *copies))
            grads = torch.autograd.grad(values.sum(), copies)
            torch.vmap(vjp)(tuple(g.view(50, 20, *g.shape[1:]) for g in grads))

        vec = best_of(vectorized, 2)
        print(f"6. per-sample input gradients, 20 images x S = 50: repeating the input {rep:.3f} s, vectorized "
              f"backward over one shared forward {vec:.3f} s")

    if 7 in items:
        model.to(memory_format=torch.contiguous_format)  # in place: net holds the same layers
        flat = best_of(lambda: cw_step(net, x, t, 8, chunk))
        model.to(memory_format=torch.channels_last)
        last = best_of(lambda: cw_step(net, x, t, 8, chunk))
        print(f"7. C&W step at EOT 8, 900 examples: channels-last {last:.3f} s vs contiguous {flat:.3f} s -> "
              f"{last / flat:.2f}x")

    if 3 in items:
        attackers = {k: attacker_space(["cw"], {"kappa": ["5"]}, [str(k)], ["expected"], text=True)[0]
                     for k in (1, 8)}
        wall, cpu, passes = {}, {}, {}
        for k, attacker in attackers.items():
            cell = CellSpec(source, DataSource("mnist-5k"), attacker, DefenderStrategy.dropout(0.5), 100, 20, 0)
            t0, c0 = time.perf_counter(), time.process_time()
            record = run_cell(cell)
            wall[k], cpu[k] = time.perf_counter() - t0, time.process_time() - c0
            passes[k] = record["trunk_forwards"]
            print(f"   {attacker.id}: {wall[k]:.1f} s wall, {cpu[k]:.1f} s CPU, ASR "
                  f"{sum(record['success']) / len(record['success']):.1%}, {record['backwards']} gradients, "
                  f"{passes[k]} trunk passes (inputs through the layers before the slot)", flush=True)
        print(f"3. adaptive paper-protocol cell EOT 8 / EOT 1: {wall[8] / wall[1]:.2f}x by wall time, "
              f"{cpu[8] / cpu[1]:.2f}x by CPU time (target <= 1.5x); of that, {passes[8] / passes[1]:.2f}x as many "
              f"trunk passes (Adam steps x examples still active: early abort fires later when the loss is a mean "
              f"over 8 samples) at {(cpu[8] / passes[8]) / (cpu[1] / passes[1]):.2f}x the CPU time per pass")


if __name__ == "__main__":
    main()
