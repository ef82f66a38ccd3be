"""Attack benchmark: our C&W-L2 against Foolbox 3 and ART, against the bare forward+backward loop, and our JSMA.

The paper's MNIST protocol: the first N correctly classified test images of mnist-5k, each attacked towards the
9 other classes (N = 100 gives a batch of 900), on the paper's CNN (r = 0.3, 10 epochs, no defense, so every
attack sees the same deterministic model). The model is trained once and cached under runs/bench/.

Printed, side by side: seconds per attack, targeted success and mean L2 (over successful attacks) of
* ours: ``CarliniWagnerL2`` (per-example early abort, batch compaction, input-only gradients);
* Foolbox 3.3.4 ``L2CarliniWagnerAttack`` (the faithful reference; batch-level early abort);
* ART ``CarliniL2Method`` (line search, no early abort), on the first ``--art-images`` images only, since it is
  far slower; its seconds per attack are measured on that subset, and ours are compared on the same pairs;
then our seconds per iteration against a bare loop of forward + input-gradient on the same batch (once as one
pass of the whole batch, once in passes of ``CPU_FORWARD_IMAGES`` as the attacks run), and JSMA's seconds
per attack, success and mean L0. All C&W runs use the same search steps, iterations, step size and initial c.

Run: ``.venv/bin/python bench/attacks.py`` (full: 100 images, 10 x 100, tens of minutes on 2 CPU cores),
``--n-images 10`` for a 90-attack run, ``--search-steps 3`` to shorten every C&W run alike, ``--quick`` for
a smoke run (3 images, 3 x 100; under a minute).
Needs ``adversarial-robustness-toolbox`` for the ART column (skipped with a note when it is missing).
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from payoffs.attacks import JSMA, CarliniWagnerL2
from payoffs.attacks.base import CPU_FORWARD_IMAGES
from payoffs.attacks.objectives import cw_f
from payoffs.checkpoint import load_checkpoint, save_checkpoint
from payoffs.data import load_dataset
from payoffs.training import TrainConfig, train

MODEL_PATH = Path("runs/bench/mnist5k-r0.3-e10.pt")


def load_model(path: Path) -> torch.nn.Module:
    if not path.is_file():
        print(f"training the paper's MNIST CNN (r = 0.3, 10 epochs) -> {path}", flush=True)
        result = train(load_dataset("mnist-5k"), TrainConfig(train_dropout=0.3, epochs=10, seed=0))
        save_checkpoint(path, result.model, {"dataset": "mnist-5k", "train_dropout": 0.3, "epochs": 10,
                                             "test_accuracy": result.test_accuracy})
    model, _ = load_checkpoint(path)
    return model


def attack_pairs(model: torch.nn.Module, n_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_images`` correctly classified test images, each towards the 9 other classes."""
    data = load_dataset("mnist-5k")
    with torch.no_grad():
        correct = (model(data.x_test).argmax(1) == data.y_test).nonzero().flatten()[:n_images]
    x = data.x_test[correct].repeat_interleave(9, dim=0)
    t = (data.y_test[correct].repeat_interleave(9) + torch.arange(1, 10).repeat(len(correct))) % 10
    return x, t


def bare_loop(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, chunk: int, repeats: int) -> float:
    """Seconds per forward + input-gradient of the C&W loss over the whole batch, ``chunk`` images per pass."""
    def once() -> None:
        for i in range(0, len(x), chunk):
            xv = x[i:i + chunk].clone().requires_grad_(True)
            torch.autograd.grad(cw_f(model(xv), t[i:i + chunk]).sum(), [xv])
    once()
    start = time.perf_counter()
    for _ in range(repeats):
        once()
    return (time.perf_counter() - start) / repeats


def run_ours(model, x, t, params) -> dict:
    start = time.perf_counter()
    r = CarliniWagnerL2(**params)(model, x, t)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "success": r.success.numpy(), "l2": r.l2.numpy(),
            "steps": int(r.iterations.sum())}


def run_foolbox(model, x, t, params) -> dict:
    import foolbox as fb

    attack = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=params["search_steps"], steps=params["iterations"],
                                              stepsize=params["learning_rate"], initial_const=params["initial_c"],
                                              abort_early=True)
    start = time.perf_counter()
    _, adv, ok = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, fb.criteria.TargetedMisclassification(t),
                        epsilons=None)
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)  # Foolbox's backward() leaves weight gradients behind
    return {"seconds": seconds, "success": ok.numpy(), "l2": (adv - x).flatten(1).norm(dim=1).numpy()}


def run_art(model, x, t, params) -> dict:
    from art.attacks.evasion import CarliniL2Method
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                                   clip_values=(0.0, 1.0))
    attack = CarliniL2Method(classifier, targeted=True, confidence=0.0, learning_rate=params["learning_rate"],
                             binary_search_steps=params["search_steps"], max_iter=params["iterations"],
                             initial_const=params["initial_c"], batch_size=len(x), verbose=False)
    start = time.perf_counter()
    adv = attack.generate(x.numpy(), y=np.eye(10, dtype=np.float32)[t.numpy()])
    seconds = time.perf_counter() - start
    adv_t = torch.from_numpy(adv)
    with torch.no_grad():
        ok = (model(adv_t).argmax(1) == t).numpy()
    return {"seconds": seconds, "success": ok, "l2": (adv_t - x).flatten(1).norm(dim=1).numpy()}


def run_jsma(model, x, t) -> dict:
    start = time.perf_counter()
    r = JSMA()(model, x, t)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "success": r.success.numpy(), "l2": r.l2.numpy(), "l0": r.l0.numpy()}


def _mean_over_success(values: np.ndarray, success: np.ndarray) -> float:
    return float(values[success].mean()) if success.any() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="3 images and 3 search steps")
    parser.add_argument("--search-steps", type=int, default=None, help="default 10 (3 with --quick)")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--initial-c", type=float, default=10.0)
    parser.add_argument("--art-images", type=int, default=1, help="images (x 9 targets) for ART, default 1")
    parser.add_argument("--skip", default="", help="comma-separated: foolbox,art,jsma")
    parser.add_argument("--model", type=Path, default=MODEL_PATH)
    args = parser.parse_args()
    n_images = 3 if args.quick else args.n_images
    steps = args.search_steps or (3 if args.quick else 10)
    art_images = min(n_images, args.art_images)
    skip = set(filter(None, args.skip.split(",")))
    params = {"search_steps": steps, "iterations": args.iterations, "learning_rate": args.learning_rate,
              "initial_c": args.initial_c}

    model = load_model(args.model)
    x, t = attack_pairs(model, n_images)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; batch {len(x)} = {n_images} images x 9 targets; "
          f"C&W {steps} x {args.iterations}, lr {args.learning_rate}, initial c {args.initial_c}", flush=True)

    rows: list[tuple] = []
    # The bare loop is timed right before and right after our C&W and averaged: other users' load on a shared
    # machine drifts over minutes, and this ratio is the one that must compare like with like.
    bare_before = (bare_loop(model, x, t, len(x), repeats=3), bare_loop(model, x, t, CPU_FORWARD_IMAGES, repeats=3))
    ours = run_ours(model, x, t, params)
    bare_after = (bare_loop(model, x, t, len(x), repeats=3), bare_loop(model, x, t, CPU_FORWARD_IMAGES, repeats=3))
    bare_full, bare_chunked = ((a + b) / 2 for a, b in zip(bare_before, bare_after))
    rows.append(("C&W ours", len(x), ours))
    print(f"  ours done in {ours['seconds']:.1f} s", flush=True)
    fool = None
    if "foolbox" not in skip:
        fool = run_foolbox(model, x, t, params)
        rows.append(("C&W Foolbox 3", len(x), fool))
        print(f"  foolbox done in {fool['seconds']:.1f} s", flush=True)
    art = None
    n_art = 9 * art_images
    if "art" not in skip:
        try:
            art = run_art(model, x[:n_art], t[:n_art], params)
        except ImportError:
            print("  ART not installed (pip install adversarial-robustness-toolbox): column skipped")
        else:
            rows.append(("C&W ART", n_art, art))
            sub = {k: (v[:n_art] if isinstance(v, np.ndarray) else v) for k, v in ours.items()}
            rows.append(("C&W ours, on ART's pairs", n_art, sub | {"seconds": float("nan")}))
            print(f"  ART done in {art['seconds']:.1f} s", flush=True)
    jsma = None
    if "jsma" not in skip:
        jsma = run_jsma(model, x, t)
        rows.append(("JSMA ours (theta 1, gamma 0.1)", len(x), jsma))

    print()
    print(f"{'attack':<32} {'pairs':>5} {'s/attack':>9} {'success':>8} {'mean L2':>8} {'mean L0':>8}")
    for name, n, r in rows:
        l0 = _mean_over_success(r["l0"], r["success"]) if "l0" in r else float("nan")
        print(f"{name:<32} {n:>5} {r['seconds'] / n:>9.4f} {r['success'].mean():>8.3f} "
              f"{_mean_over_success(r['l2'], r['success']):>8.3f} {l0:>8.1f}")
    per_iteration = ours["seconds"] / (ours["steps"] / len(x))
    print()
    print(f"our C&W: {ours['steps'] / len(x):.0f} Adam steps per attack (of {steps * args.iterations}); "
          f"{per_iteration:.3f} s per batch-equivalent iteration")
    print(f"bare forward+backward of batch {len(x)}: {bare_full:.3f} s as one pass, "
          f"{bare_chunked:.3f} s in passes of {CPU_FORWARD_IMAGES}")
    print()
    print("ratios (target in brackets):")
    if fool is not None:
        print(f"  Foolbox / ours, s per attack:      {fool['seconds'] / ours['seconds']:6.2f}   [>= 2]")
        l2_ratio = _mean_over_success(ours["l2"], ours["success"]) / _mean_over_success(fool["l2"], fool["success"])
        print(f"  ours / Foolbox, mean L2:           {l2_ratio:6.3f}   [0.95 - 1.05]; "
              f"success {ours['success'].mean():.3f} vs {fool['success'].mean():.3f}")
    if art is not None:
        ours_sub_s = ours["seconds"] / len(x)
        ok_sub = ours["success"][:n_art]
        print(f"  ART / ours, s per attack:          {art['seconds'] / n_art / ours_sub_s:6.2f}   [>= 20]")
        l2_ratio = _mean_over_success(ours["l2"][:n_art], ok_sub) / _mean_over_success(art["l2"], art["success"])
        print(f"  ours / ART, mean L2 (ART's pairs): {l2_ratio:6.3f}   [<= 1.05]; "
              f"success {ok_sub.mean():.3f} vs {art['success'].mean():.3f}")
    print(f"  ours per iteration / bare loop:    {per_iteration / min(bare_full, bare_chunked):6.2f}   [<= 1.2] "
          f"(vs one-pass bare loop: {per_iteration / bare_full:.2f})")
    if jsma is not None:
        print(f"  JSMA s per attack:                 {jsma['seconds'] / len(x):6.3f}   [< 0.5]")


if __name__ == "__main__":
    main()
