"""Fused cells against the same cells one by one, side by side in one run (issue 14, item 4).

    .venv/bin/python bench/fused.py [--device auto] [--n-images 100] [--eot 8] [--rates 0.1,0.3,0.5,0.7,0.9]

On the paper's MNIST CNN (mnist-5k, r = 0.3; trained once into runs/bench/), the adaptive C&W (kappa 5, EOT k,
``expected``, 10 x 100) against dropout at each rate: first every cell alone, then all of them as one fused job
(:func:`payoffs.cell.run_cells`). Prints both wall times, their ratio, and how many attacks' records differ (the
logic is exact, `tests/payoffs/test_fused.py`; what can differ is float round-off, as between batch sizes). On a
GPU the fused job fills the device; on a CPU expect about 1x.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.sampling import model_path  # noqa: E402
from gameplay.strategies import attacker_space  # noqa: E402
from payoffs.cell import CellSpec, run_cell, run_cells  # noqa: E402
from payoffs.device import resolve_device  # noqa: E402
from payoffs.sources import DataSource  # noqa: E402
from payoffs.strategy import DefenderStrategy  # noqa: E402
from payoffs.table import load_model_refs  # noqa: E402

OBSERVATIONS = ("success", "believed", "l2", "iterations")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--eot", type=int, default=8)
    parser.add_argument("--rates", default="0.1,0.3,0.5,0.7,0.9")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    source = load_model_refs([model_path(ROOT / "runs" / "bench")])[0]
    attacker = attacker_space(["cw"], {"kappa": ["5"]}, [str(args.eot)], ["expected"], text=True)[0]
    specs = [CellSpec(source, DataSource("mnist-5k"), attacker, DefenderStrategy.dropout(float(r)), args.n_images,
                      20, 0, device=str(device)) for r in args.rates.split(",")]
    model, data = source.load(device), specs[0].data.load_test()
    print(f"torch {torch.__version__} on {device}, {torch.get_num_threads()} threads; {attacker.id}, "
          f"{len(specs)} cells of {args.n_images} images x 9 targets, M = 20", flush=True)
    _sync(device)
    t0 = time.perf_counter()
    alone = [run_cell(spec, model=model, data=data) for spec in specs]
    _sync(device)
    separate = time.perf_counter() - t0
    print(f"   one by one: {separate:.1f} s", flush=True)
    t0 = time.perf_counter()
    fused = run_cells(specs, model=model, data=data)
    _sync(device)
    together = time.perf_counter() - t0
    print(f"   fused: {together:.1f} s -> one by one / fused = {separate / together:.2f}x")
    for spec, a, b in zip(specs, alone, fused):
        differ = {f: sum(u != v for u, v in zip(a[f], b[f])) for f in OBSERVATIONS}
        print(f"   {spec.defender.id}: ASR alone {sum(a['success']) / len(a['success']):.1%}, fused "
              f"{sum(b['success']) / len(b['success']):.1%}; attacks whose record differs: "
              + ", ".join(f"{f} {n}/{len(a[f])}" for f, n in differ.items()))
    print("   (a difference is float round-off: a convolution's sums depend on the batch it runs in, and 1,000 "
          "Adam steps can carry a last-bit change to another example)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
