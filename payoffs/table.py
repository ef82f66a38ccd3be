"""The payoff table: every attacker strategy against every defender strategy on every model.

One row per cell, columns (documented in the README):

==========================  =====================================================================
attacker, defender          strategy ids (``cw[k=0,eot=8,exp]``, ``dropout[r'=0.5]``; with several
                            models the defender id is prefixed by ``r=<train rate>/``)
attack, kappa, c, eot,      the attacker strategy's fields (``kappa``/``c`` NaN when not C&W)
success_test, eps
defense, train_dropout,     the defender strategy: none | dropout | sap, training rate r, test rate r'
test_dropout, sap_draws     (0 for none, NaN for SAP), SAP's draws (NaN = one per unit)
model, dataset              the checkpoint's weights hash and its dataset
n_images, n_attacks,        N images, N x 9 attacks, M defender samples per adversarial example
n_samples
asr, asr_low, asr_high,     attack success rate over attacks x M samples, 95% bootstrap interval
asr_std_error               over attacks, and the bootstrap standard error
asr_majority                share of attacks whose target wins in more than M/2 samples
asr_believed                share the attacker judged successful while searching
l2_mean, l2_median,         distortion of majority-successful examples (NaN if none)
l0_mean, linf_mean
clean_accuracy, _low, _high clean accuracy of the defended model on the whole test split, M samples
seconds                     seconds the cell took (attack + evaluation)
key                         the cell's cache key
==========================  =====================================================================
"""
from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from payoffs.cache import CellCache
from payoffs.cell import AccuracySpec, CellSpec, run_accuracy, run_cell
from payoffs.checkpoint import load_checkpoint, weights_hash
from payoffs.errors import DefdropError
from payoffs.executor import make_executor
from payoffs.io import atomic_write_files
from payoffs.strategy import AttackerStrategy, DefenderStrategy

TABLE_COLUMNS = [
    "attacker", "attack", "kappa", "c", "eps", "eot", "success_test",
    "defender", "defense", "train_dropout", "test_dropout", "sap_draws", "model", "dataset",
    "n_images", "n_attacks", "n_samples", "asr", "asr_low", "asr_high", "asr_std_error", "asr_majority",
    "asr_believed", "l2_mean", "l2_median", "l0_mean", "linf_mean", "clean_accuracy", "clean_accuracy_low",
    "clean_accuracy_high", "seconds", "key",
]


@dataclass(frozen=True)
class ModelRef:
    path: str
    hash: str
    train_dropout: float
    dataset: str
    meta: dict


def load_model_refs(paths: Sequence[str | Path]) -> list[ModelRef]:
    """Open each checkpoint once (clear error if it is not one) and hash its weights."""
    if not paths:
        raise DefdropError("give at least one --model checkpoint")
    refs = []
    for path in paths:
        model, meta = load_checkpoint(path)
        refs.append(ModelRef(str(Path(path).resolve()), weights_hash(model), float(model.train_dropout),
                             str(meta.get("dataset", "mnist-5k")), meta))
    return refs


def _defender_label(ref: ModelRef, defender: DefenderStrategy, refs: Sequence[ModelRef]) -> str:
    if len(refs) == 1:
        return defender.id
    same_rate = sum(r.train_dropout == ref.train_dropout for r in refs) > 1
    prefix = f"r={ref.train_dropout:g}" + (f"@{ref.hash[:6]}" if same_rate else "")
    return f"{prefix}/{defender.id}"


def _row(ref: ModelRef, refs, attacker: AttackerStrategy, defender: DefenderStrategy, cell: dict,
         acc: dict) -> dict:
    nan = float("nan")
    return {
        "attacker": attacker.id, "attack": attacker.attack,
        "kappa": attacker.param("kappa", 0.0) if attacker.attack == "cw" else nan,
        "c": attacker.param("initial_c", nan) if attacker.attack == "cw" else nan,
        "eps": attacker.param("eps", nan), "eot": attacker.eot, "success_test": attacker.success_test,
        "defender": _defender_label(ref, defender, refs), "defense": defender.defense,
        "train_dropout": ref.train_dropout, "test_dropout": defender.test_dropout,
        "sap_draws": defender.sap_draws if defender.sap_draws is not None else nan,
        "model": ref.hash, "dataset": ref.dataset,
        **{k: cell[k] for k in ("n_images", "n_attacks", "n_samples", "asr", "asr_low", "asr_high",
                                "asr_std_error", "asr_majority", "asr_believed", "l2_mean", "l2_median",
                                "l0_mean", "linf_mean", "seconds", "key")},
        **{k: acc[k] for k in ("clean_accuracy", "clean_accuracy_low", "clean_accuracy_high")},
    }


@dataclass
class BuildStats:
    computed: int = 0
    cached: int = 0


def build_payoff_table(
    models: Sequence[ModelRef], attackers: Sequence[AttackerStrategy], defenders: Sequence[DefenderStrategy], *,
    n_images: int = 100, eval_samples: int = 20, seed: int = 0, cache_dir: str | Path = ".defdrop-cache",
    jobs: int = 1, device: str = "cpu", batch_size: int = 900,
    on_done: Callable[[str, int, int, dict], None] | None = None,
    progress_for: Callable[[str], Callable[[int, int], None] | None] | None = None,
    stats: BuildStats | None = None,
) -> pd.DataFrame:
    """Evaluate models x defenders x attackers into a DataFrame with :data:`TABLE_COLUMNS`.

    Finished cells are read from ``cache_dir``; missing ones are computed (``jobs`` processes) and stored as
    soon as each finishes, so an interrupted build resumes where it stopped and yields the same table.
    ``on_done(kind, done, total, record)`` reports each finished job (kind: ``accuracy`` or ``cell``).
    """
    if n_images < 1:
        raise DefdropError(f"--n-images {n_images} must be at least 1")
    if eval_samples < 1:
        raise DefdropError(f"--eval-samples {eval_samples} must be at least 1")
    if batch_size < 1:
        raise DefdropError(f"--batch-size {batch_size} must be at least 1")
    if not attackers or not defenders:
        raise DefdropError("the strategy space is empty: give at least one attacker and one defender")
    cache = CellCache(cache_dir)
    stats = stats if stats is not None else BuildStats()
    acc_specs = {(m.hash, d): AccuracySpec(m.path, m.hash, d, eval_samples, seed, device)
                 for m in models for d in defenders}
    cell_specs = {(m.hash, d, a): CellSpec(m.path, m.hash, a, d, n_images, eval_samples, seed, device, batch_size)
                  for m in models for d in defenders for a in attackers}
    results: dict[str, dict] = {}
    todo: list[tuple[str, Callable, object]] = []
    for kind, fn, specs in (("accuracy", run_accuracy, acc_specs.values()), ("cell", run_cell, cell_specs.values())):
        for spec in specs:
            hit = cache.get(spec.key())
            if hit is not None:
                results[spec.key()] = hit
                stats.cached += 1
            else:
                todo.append((kind, fn, spec))
    total = len(todo)
    executor = make_executor(jobs, (lambda i: progress_for(todo[i][0])) if progress_for else None)
    for done, (i, record) in enumerate(executor.run([(fn, spec) for _, fn, spec in todo]), start=1):
        cache.put(record["key"], record)
        results[record["key"]] = record
        stats.computed += 1
        if on_done is not None:
            on_done(todo[i][0], done, total, record)
    rows = [_row(m, models, a, d, results[cell_specs[(m.hash, d, a)].key()], results[acc_specs[(m.hash, d)].key()])
            for m in models for d in defenders for a in attackers]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in ("defdrop", "torch", "numpy", "pandas", "scipy", "nashpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def payoff_outputs(out: str | Path) -> dict[str, Path]:
    """The files :func:`write_payoff_table` writes for ``out``, by role: the CSV (what readers key on) first,
    then its sidecars. Commands check them all before any work (``payoffs.io.check_outputs``)."""
    out = Path(out)
    return {"CSV": out, "JSON sidecar": out.with_suffix(".json")}


def write_payoff_table(table: pd.DataFrame, out: str | Path, *, models: Sequence[ModelRef],
                       attackers: Sequence[AttackerStrategy], defenders: Sequence[DefenderStrategy],
                       n_images: int, eval_samples: int, seed: int, seconds: float | None = None) -> Path:
    """Write ``out`` (CSV) and ``out`` with suffix ``.json`` (the run's settings) as a pair; returns the sidecar.

    Both are staged under temporary names and renamed sidecar first, CSV last (``payoffs.io.atomic_write_files``):
    a full disk replaces neither, and a new CSV never sits beside an old or missing sidecar. The sidecar records
    the CSV's SHA-256 (``csv_sha256``), so a reader can tell the pair apart from a crash between the renames.
    """
    paths = payoff_outputs(out)
    csv_bytes = table.to_csv(index=False).encode()
    settings = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "csv": paths["CSV"].name, "csv_sha256": hashlib.sha256(csv_bytes).hexdigest(),
        "models": [{"path": m.path, "hash": m.hash, "train_dropout": m.train_dropout, "dataset": m.dataset,
                    "test_accuracy": m.meta.get("test_accuracy"), "epochs": m.meta.get("epochs")} for m in models],
        "attackers": [a.id for a in attackers], "defenders": [d.id for d in defenders],
        "n_images": n_images, "eval_samples": eval_samples, "seed": seed,
        "cells": int(len(table)), "seconds": seconds, "machine": platform.platform(),
        "versions": _versions(), "columns": TABLE_COLUMNS,
    }
    atomic_write_files([(paths["JSON sidecar"], json.dumps(settings, indent=2, default=str).encode()),
                        (paths["CSV"], csv_bytes)])
    return paths["JSON sidecar"]
