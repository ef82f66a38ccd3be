"""One payoff cell: an attacker strategy against a defender strategy on one model (the unit of work).

Protocol (the paper's): the first N test images the undefended model classifies correctly, each attacked
towards all other classes (N = 100 gives 900 attacks on MNIST). The attacker attacks the *defended* model
(fresh defender samples per gradient). Success is then measured on the model as deployed: each adversarial
example is classified under M fresh defender samples; per attack i, ``s_i`` = fraction of the M samples that
say the target.

A cell *records observations*, one entry per attack (its image, target, ``s_i``, whether the attacker believed
it succeeded, its distortions and iterations), plus what it cost (``forwards``/``backwards``/``trunk_forwards``,
seconds); :func:`summarize_cell` turns a record into the table's numbers, so a better estimator never needs a
recomputation. Every random draw is keyed by (the cell's seed, the attack's id, the step), so the record does
not depend on the batch size, ``--jobs`` or the device split.

Everything a cell needs is in its :class:`CellSpec` (plain data, picklable, hashable to a cache key: the protocol
version, the model's identity and slot, the data, both strategies with every parameter resolved, N, M, the seed).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from payoffs import noise
from payoffs.errors import DefdropError
from payoffs.sampling import counting
from payoffs.sources import DataSource, ModelSource, TestSplit
from payoffs.stats import cluster_bootstrap_rate
from payoffs.strategy import AttackerStrategy, DefenderStrategy

PROTOCOL_VERSION = 2
"""Bumped whenever what a cell computes changes (v2: keyed per-example randomness, resolved parameters)."""
ProgressFn = Callable[[int, int], None]


def _digest(blob: dict) -> str:
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def model_key(model: ModelSource, slot: str | None) -> dict:
    """What names a model in a cache key: its content hash, the layer its defense follows (the default one spelled
    out) and how it was trained (recipe and its parameters)."""
    tags = model.description
    return {"model": model.identity, "slot": slot or model.default_slot,
            "recipe": tags.tag("recipe", "standard"), "recipe_params": tags.tag("recipe_params", ())}


@dataclass(frozen=True)
class CellSpec:
    """Everything that determines one cell's result (``device`` and ``batch_size`` only change its speed)."""

    model: ModelSource
    data: DataSource
    attacker: AttackerStrategy
    defender: DefenderStrategy
    n_images: int
    eval_samples: int
    seed: int
    slot: str | None = None
    device: str = "cpu"
    batch_size: int = 900

    def key_fields(self) -> dict:
        return {"v": PROTOCOL_VERSION, "kind": "cell", **model_key(self.model, self.slot),
                "data": self.data.identity, "attacker": self.attacker.to_dict(), "defender": self.defender.to_dict(),
                "n": self.n_images, "m": self.eval_samples, "seed": self.seed}

    def key(self) -> str:
        """SHA-256 (24 hex digits) over :meth:`key_fields`."""
        return _digest(self.key_fields())[:24]

    def cell_seed(self) -> int:
        """The cell's own seed, derived from its key, so a cell's randomness does not depend on run order."""
        return int(self.key()[:8], 16) ^ (self.seed & 0xFFFFFFFF)


@dataclass(frozen=True)
class AccuracySpec:
    """Clean accuracy of one defender strategy on one model: once per defender, not once per attacker."""

    model: ModelSource
    data: DataSource
    defender: DefenderStrategy
    eval_samples: int
    seed: int
    slot: str | None = None
    device: str = "cpu"

    def key_fields(self) -> dict:
        return {"v": PROTOCOL_VERSION, "kind": "accuracy", **model_key(self.model, self.slot),
                "data": self.data.identity, "defender": self.defender.to_dict(), "m": self.eval_samples,
                "seed": self.seed}

    def key(self) -> str:
        return "acc-" + _digest(self.key_fields())[:20]

    def cell_seed(self) -> int:
        return int(self.key()[4:12], 16) ^ (self.seed & 0xFFFFFFFF)


def attack_inputs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n_images: int,
                  num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``n_images`` test images the undefended model gets right, each x all other classes.

    Returns (inputs, targets, labels, image index), image-major: rows (K-1)i..(K-1)i+K-2 attack image i.
    """
    from payoffs.evaluation import first_correct

    idx = first_correct(model, x, y, n_images)
    if len(idx) < n_images:
        raise DefdropError(f"{n_images} images requested but only {len(idx)} of {len(x)} test images are "
                           "classified correctly by the undefended model")
    labels = y[idx]
    others = torch.stack([torch.tensor([c for c in range(num_classes) if c != int(lbl)]) for lbl in labels])
    image_index = idx.repeat_interleave(num_classes - 1)
    return x[image_index], others.flatten(), labels.repeat_interleave(num_classes - 1), image_index


def _resources(spec: CellSpec | AccuracySpec, model: torch.nn.Module | None,
               data: TestSplit | None) -> tuple[torch.nn.Module, TestSplit]:
    if model is None:
        model = spec.model.load(spec.device)
    if data is None:
        data = spec.data.load_test()
    return model, data


def defended(spec: CellSpec | AccuracySpec, model: torch.nn.Module) -> torch.nn.Module:
    from payoffs.slots import with_defense
    return with_defense(model, spec.defender.module(), spec.slot or spec.model.default_slot)


def run_cell(spec: CellSpec, progress: ProgressFn | None = None, *, model: torch.nn.Module | None = None,
             data: TestSplit | None = None) -> dict:
    """Run one cell; returns its JSON-serializable record (see the module docstring and :func:`summarize_cell`).

    ``model``/``data``: already loaded resources (an executor's cache); by default loaded from the spec.
    """
    return run_cells([spec], progress, model=model, data=data)[0]


def run_cells(specs: Sequence[CellSpec], progress: ProgressFn | None = None, *,
              model: torch.nn.Module | None = None, data: TestSplit | None = None) -> list[dict]:
    """Cells that differ only in their defender, attacked in one batch; their records, in order.

    One cell is :func:`run_cell`. Several (fused: :mod:`payoffs.fused` decides which may be) run one attack over
    every cell's examples at once, each row under its own cell's defense (:class:`payoffs.fused.RowRateDropout`)
    and keys (``group_seeds``), so each record holds what the cell alone would hold (up to the float round-off
    that another batch composition gives a convolution's sums); the attack's cost and time
    are shared equally among the cells (``fused_cells`` in the record says by how many), each evaluation is its
    cell's own.
    """
    from payoffs.attacks import make_attack
    from payoffs.evaluation import sampled_correct

    first = specs[0]
    start = time.perf_counter()
    model, data = _resources(first, model, data)
    device = next(model.parameters()).device
    inputs, targets, _, image = attack_inputs(model, data.x, data.y, first.n_images, data.num_classes)
    ids = torch.arange(len(inputs))
    fused = len(specs)
    if fused == 1:
        net, batch_ids, seeds = defended(first, model), ids, None
    else:
        from payoffs.fused import fused_net

        net = fused_net([spec.defender.rate for spec in specs], model, first.slot or first.model.default_slot)
        batch_ids = torch.cat([noise.group_ids(g, ids) for g in range(fused)])
        seeds = [spec.cell_seed() for spec in specs]
    attack = make_attack(first.attacker.attack, **first.attacker.attack_kwargs(), seed=first.cell_seed(),
                         batch_size=first.batch_size * fused)
    with counting() as attack_cost:
        result = attack(net, inputs.repeat(fused, 1, 1, 1).to(device), targets.repeat(fused).to(device), batch_ids,
                        group_seeds=seeds)
    if progress is not None:
        progress(1, 2)
    attack_seconds = time.perf_counter() - start
    records = []
    for g, spec in enumerate(specs):
        began = time.perf_counter()
        rows = slice(g * len(inputs), (g + 1) * len(inputs))
        with counting() as cost:
            s = sampled_correct(net if fused == 1 else defended(spec, model), result.x_adv[rows], targets,
                                spec.eval_samples, seed=spec.cell_seed(), ids=ids, purpose=noise.EVAL)
        shared = {k: round(v / fused) for k, v in attack_cost.to_dict().items()}
        records.append(_cell_record(spec, image, targets, s, result, rows, device, {
            k: shared[k] + v for k, v in cost.to_dict().items()},
            attack_seconds / fused + time.perf_counter() - began, fused))
    if progress is not None:
        progress(2, 2)
    return records


def _cell_record(spec: CellSpec, image: torch.Tensor, targets: torch.Tensor, s, result, rows: slice,
                 device: torch.device, cost: dict[str, int], seconds: float, fused: int) -> dict:
    def floats(t: torch.Tensor) -> list[float]:
        return [round(float(v), 6) for v in t[rows].detach().cpu().tolist()]

    record = {
        "kind": "cell", "key": spec.key(), "protocol": PROTOCOL_VERSION, "model": spec.model.identity,
        "model_label": spec.model.description.label, "data": spec.data.identity, "slot": spec.slot,
        "attacker": spec.attacker.id, "defender": spec.defender.id, "n_images": int(spec.n_images),
        "n_attacks": int(len(s)), "n_samples": int(spec.eval_samples),
        "image": [int(v) for v in image.tolist()], "target": [int(v) for v in targets.tolist()],
        "success": [round(float(v), 6) for v in s], "believed": [bool(v) for v in result.success[rows].tolist()],
        "l2": floats(result.l2), "l0": floats(result.l0), "linf": floats(result.linf),
        "iterations": [int(v) for v in result.iterations[rows].tolist()],
        **cost, "seconds": seconds, "device": str(device), "threads": torch.get_num_threads(),
    }
    if fused > 1:
        record["fused_cells"] = fused
    return record


def run_accuracy(spec: AccuracySpec, progress: ProgressFn | None = None, *, model: torch.nn.Module | None = None,
                 data: TestSplit | None = None) -> dict:
    """Clean accuracy on the whole test split, M defender samples per image: the per-image record."""
    from payoffs.evaluation import sampled_correct

    start = time.perf_counter()
    model, data = _resources(spec, model, data)
    with counting() as cost:
        correct = sampled_correct(defended(spec, model), data.x, data.y, spec.eval_samples,
                                  seed=spec.cell_seed(), purpose=noise.ACCURACY, progress=progress)
    return {"kind": "accuracy", "key": spec.key(), "protocol": PROTOCOL_VERSION, "model": spec.model.identity,
            "model_label": spec.model.description.label, "data": spec.data.identity, "slot": spec.slot,
            "defender": spec.defender.id, "n_samples": int(spec.eval_samples), "n_test": int(len(correct)),
            "correct": [round(float(v), 6) for v in correct], **cost.to_dict(),
            "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------------------------------- summaries
def _nan_stat(values: np.ndarray, fn) -> float:
    return float(fn(values)) if values.size else float("nan")


MAJORITY = 0.5
"""An attack is majority-successful when its target wins in more than this share of the M samples."""


def summarize_cell(record: dict, seed: int = 0) -> dict[str, Any]:
    """The table's numbers from a cell record: ASR with its image-clustered interval, majority and believed
    success, distortions (of majority-successful examples, and over all attacks), iterations and costs."""
    s = np.asarray(record["success"], dtype=np.float64)
    est = cluster_bootstrap_rate(s, np.asarray(record["image"]), record["n_samples"], seed=seed)
    won = s > MAJORITY
    l2 = np.asarray(record["l2"], dtype=np.float64)
    return {
        "n_images": record["n_images"], "n_attacks": record["n_attacks"], "n_samples": record["n_samples"],
        "asr": est.mean, "asr_low": est.low, "asr_high": est.high, "asr_std_error": est.std_error,
        "asr_interval": est.method, "asr_majority": float(won.mean()) if s.size else math.nan,
        "asr_believed": float(np.mean(record["believed"])) if s.size else math.nan,
        "l2_mean": _nan_stat(l2[won], np.mean), "l2_median": _nan_stat(l2[won], np.median),
        "l2_all_mean": _nan_stat(l2, np.mean),
        "l0_mean": _nan_stat(np.asarray(record["l0"], dtype=np.float64)[won], np.mean),
        "linf_mean": _nan_stat(np.asarray(record["linf"], dtype=np.float64)[won], np.mean),
        "iterations_mean": _nan_stat(np.asarray(record["iterations"], dtype=np.float64), np.mean),
        "forwards": record["forwards"], "backwards": record["backwards"],
        "trunk_forwards": record["trunk_forwards"], "seconds": record["seconds"], "key": record["key"],
    }


def headline(record: dict) -> tuple[str, float]:
    """What a progress line shows for a finished record: ``("ASR", mean s_i)`` or ``("clean accuracy", ...)``."""
    if record.get("kind") == "accuracy":
        return "clean accuracy", float(np.mean(record["correct"]))
    return "ASR", float(np.mean(record["success"])) if record.get("success") else math.nan


def per_image_asr(record: dict) -> tuple[np.ndarray, np.ndarray]:
    """(image index, ASR of that image over its attacks and M samples), images in attack order."""
    image = np.asarray(record["image"])
    s = np.asarray(record["success"], dtype=np.float64)
    order, index = np.unique(image, return_index=True)
    images = image[np.sort(index)]
    return images, np.array([s[image == i].mean() for i in images])


def summarize_accuracy(record: dict, seed: int = 0) -> dict[str, Any]:
    correct = np.asarray(record["correct"], dtype=np.float64)
    est = cluster_bootstrap_rate(correct, None, record["n_samples"], seed=seed)
    return {"clean_accuracy": est.mean, "clean_accuracy_low": est.low, "clean_accuracy_high": est.high,
            "clean_accuracy_std_error": est.std_error, "accuracy_key": record["key"]}


# ---------------------------------------------------------------------------------------------- record checks
_CELL_LISTS = ("image", "target", "success", "believed", "l2", "l0", "linf", "iterations")


def valid_record(record: Any, key: str) -> bool:
    """True when ``record`` has the shape this version writes for ``key`` (anything else is recomputed)."""
    try:
        if not isinstance(record, dict) or record.get("key") != key or record.get("protocol") != PROTOCOL_VERSION:
            return False
        for name in ("forwards", "backwards", "trunk_forwards"):
            if not isinstance(record.get(name), int) or record[name] < 0:
                return False
        if not isinstance(record.get("seconds"), (int, float)):
            return False
        if record.get("kind") == "cell":
            n = record["n_attacks"]
            if not isinstance(n, int) or not isinstance(record.get("n_samples"), int) or record["n_samples"] < 1:
                return False
            for name in _CELL_LISTS:
                values = record.get(name)
                if not isinstance(values, list) or len(values) != n:
                    return False
            s = np.asarray(record["success"], dtype=np.float64)
            l2 = np.asarray(record["l2"], dtype=np.float64)
            return bool(np.all((s >= 0) & (s <= 1)) and np.all(np.isfinite(l2)) and np.all(l2 >= 0)
                        and all(isinstance(b, bool) for b in record["believed"]))
        if record.get("kind") == "accuracy":
            c = np.asarray(record.get("correct"), dtype=np.float64)
            return (c.ndim == 1 and c.size == record.get("n_test") and c.size > 0
                    and isinstance(record.get("n_samples"), int) and bool(np.all((c >= 0) & (c <= 1))))
    except (TypeError, ValueError, KeyError):
        return False
    return False
