"""One payoff cell: an attacker strategy against a defender strategy on one model (the unit of work).

Protocol (the paper's): the first N test images the undefended model classifies correctly, each attacked
towards all 9 other classes (N = 100 gives 900 attacks on MNIST). The attacker attacks the *defended* model
(fresh defender samples per gradient). Success is then measured on the model as deployed: each adversarial
example is classified under M fresh defender samples; per attack i, ``s_i`` = fraction of the M samples that
say the target.

* ``asr`` = mean_i s_i, with a 95% bootstrap interval over attacks (``asr_low``, ``asr_high``, ``asr_std_error``)
* ``asr_majority`` = fraction of attacks with s_i > 1/2
* ``asr_believed`` = fraction the attacker itself judged successful while searching (its success test)
* ``l2_mean`` / ``l2_median`` (and ``l0_mean``, ``linf_mean``) over the majority-successful attacks

Everything a cell needs is in its :class:`CellSpec` (plain data, picklable, hashable to a cache key), so cells
run in any process or on any machine that can read the checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from payoffs.errors import DefdropError
from payoffs.evaluation import sampled_correct
from payoffs.stats import bootstrap_rate
from payoffs.strategy import AttackerStrategy, DefenderStrategy

PROTOCOL_VERSION = 1
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class CellSpec:
    """Everything that determines one cell's result."""

    model_path: str
    model_hash: str
    attacker: AttackerStrategy
    defender: DefenderStrategy
    n_images: int
    eval_samples: int
    seed: int
    device: str = "cpu"
    batch_size: int = 900

    def key(self) -> str:
        """SHA-256 over the weights' hash, both strategies, N, M, the seed and the protocol version."""
        blob = json.dumps({"v": PROTOCOL_VERSION, "model": self.model_hash, "attacker": self.attacker.to_dict(),
                           "defender": self.defender.to_dict(), "n": self.n_images, "m": self.eval_samples,
                           "seed": self.seed}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def cell_seed(self) -> int:
        """A per-cell seed derived from the key, so a cell's randomness does not depend on run order."""
        return int(self.key()[:8], 16) ^ self.seed


def attack_inputs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n_images: int,
                  num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``n_images`` test images the undefended model gets right, each x all other classes.

    Returns (inputs, targets, labels, image index), image-major: rows 9i..9i+8 attack image i.
    """
    from payoffs.evaluation import first_correct

    idx = first_correct(model, x, y, n_images)
    if len(idx) < n_images:
        raise DefdropError(f"--n-images {n_images}: only {len(idx)} of {len(x)} test images are classified correctly")
    labels = y[idx]
    others = torch.stack([torch.tensor([c for c in range(num_classes) if c != int(lbl)]) for lbl in labels])
    image_index = idx.repeat_interleave(num_classes - 1)
    return x[image_index], others.flatten(), labels.repeat_interleave(num_classes - 1), image_index


@lru_cache(maxsize=2)
def _dataset(name: str, data_dir: str | None):
    """Datasets are read once per process, not once per cell."""
    from payoffs.data import load_dataset
    return load_dataset(name, data_dir)


def _nan_stat(values: np.ndarray, fn) -> float:
    return float(fn(values)) if values.size else float("nan")


def run_cell(spec: CellSpec, progress: ProgressFn | None = None) -> dict:
    """Run one cell; returns a JSON-serializable dict (table fields plus per-attack success fractions)."""
    from payoffs.attacks import make_attack
    from payoffs.checkpoint import load_checkpoint
    from payoffs.models import with_defense

    start = time.perf_counter()
    device = torch.device(spec.device)
    model, meta = load_checkpoint(spec.model_path, device)
    data = _dataset(meta.get("dataset", "mnist-5k"), meta.get("data_dir"))
    inputs, targets, _, _ = attack_inputs(model, data.x_test, data.y_test, spec.n_images, data.num_classes)
    defended = with_defense(model, spec.defender.module())
    seed = spec.cell_seed()
    per_batch = max(1, spec.batch_size // spec.attacker.eot)
    attack = make_attack(spec.attacker.attack, eot=spec.attacker.eot, success_test=spec.attacker.success_test,
                         seed=seed, batch_size=per_batch, **dict(spec.attacker.params))
    result = attack(defended, inputs.to(device), targets.to(device))
    if progress is not None:
        progress(1, 2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        s = sampled_correct(defended, result.x_adv, targets, spec.eval_samples)  # target wins
    if progress is not None:
        progress(2, 2)
    est = bootstrap_rate(s, spec.eval_samples, seed=seed)
    won = s > 0.5
    l2 = result.l2.detach().cpu().numpy()[won]
    return {
        "key": spec.key(), "model_file": Path(spec.model_path).name,
        "attacker": spec.attacker.id, "defender": spec.defender.id, "n_attacks": int(len(s)), "n_images": int(spec.n_images),
        "n_samples": int(spec.eval_samples), "asr": est.mean, "asr_low": est.low, "asr_high": est.high,
        "asr_std_error": est.std_error, "asr_majority": float(won.mean()) if len(s) else float("nan"),
        "asr_believed": float(result.success.float().mean()),
        "l2_mean": _nan_stat(l2, np.mean), "l2_median": _nan_stat(l2, np.median),
        "l0_mean": _nan_stat(result.l0.detach().cpu().numpy()[won], np.mean),
        "linf_mean": _nan_stat(result.linf.detach().cpu().numpy()[won], np.mean),
        "iterations_mean": float(result.iterations.float().mean()),
        "seconds": time.perf_counter() - start, "per_attack_success": [round(float(v), 6) for v in s],
    }


@dataclass(frozen=True)
class AccuracySpec:
    """Clean accuracy of one defender strategy on one model: once per defender, not once per attacker."""

    model_path: str
    model_hash: str
    defender: DefenderStrategy
    eval_samples: int
    seed: int
    device: str = "cpu"

    def key(self) -> str:
        blob = json.dumps({"v": PROTOCOL_VERSION, "model": self.model_hash, "defender": self.defender.to_dict(),
                           "m": self.eval_samples, "seed": self.seed, "what": "clean-accuracy"}, sort_keys=True)
        return "acc-" + hashlib.sha256(blob.encode()).hexdigest()[:20]


def run_accuracy(spec: AccuracySpec, progress: ProgressFn | None = None) -> dict:
    """Clean accuracy on the whole test split, averaged over M defender samples, with its interval."""
    from payoffs.checkpoint import load_checkpoint
    from payoffs.evaluation import defended_accuracy
    from payoffs.models import with_defense

    start = time.perf_counter()
    model, meta = load_checkpoint(spec.model_path, torch.device(spec.device))
    data = _dataset(meta.get("dataset", "mnist-5k"), meta.get("data_dir"))
    seed = int(spec.key()[4:12], 16) ^ spec.seed
    est = defended_accuracy(with_defense(model, spec.defender.module()), data.x_test, data.y_test,
                            spec.eval_samples, seed, progress=progress)
    return {"key": spec.key(), "model_file": Path(spec.model_path).name, "defender": spec.defender.id, "clean_accuracy": est.mean, "clean_accuracy_low": est.low,
            "clean_accuracy_high": est.high, "n_test": int(len(data.x_test)), "seconds": time.perf_counter() - start}

