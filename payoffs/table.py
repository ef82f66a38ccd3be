"""The payoff table: every attacker strategy against every defender strategy on every model.

One row per cell; columns (:data:`TABLE_COLUMNS`, documented in the README):

===========================  ===========================================================================
attacker, defender           strategy ids (``cw[k=0,eot=8,exp]``, ``dropout[r'=0.5]``; with several models
                             the defender id is prefixed by the model's label: ``r=0.3/dropout[r'=0.5]``)
attack, kappa, c, eps, eot,  the attacker strategy's main fields (NaN where the attack has no such
success_test,                parameter) and all its resolved parameters as ``name=value;...``
attacker_params
defense, defense_params,     the defense, its resolved parameters, and r' (0 for none, NaN for a defense
test_dropout                 without a rate, e.g. SAP)
model, model_label, slot,    the model's identity (content hash), label, the layer the defense follows,
dataset, train_dropout,      its dataset, training dropout rate r (NaN if unknown) and training recipe
recipe
n_images, n_attacks,         N images, N x (K - 1) attacks, M defender samples per adversarial example
n_samples
asr, asr_low, asr_high,      attack success rate (mean over attacks of the share of M samples saying the
asr_std_error, asr_interval  target), its 95% interval from resampling images, and how it was computed
asr_majority, asr_believed   share of attacks won in more than M/2 samples; share the attacker believed
l2_mean, l2_median, l0_mean, distortion of majority-successful examples (NaN if none)
linf_mean
l2_all_mean                  mean L2 over all attacks (the distortion the attacker actually paid)
clean_accuracy, _low, _high  clean accuracy of the defended model on the whole test split, M samples, with its
                             interval over images
forwards, backwards          logit vectors computed and gradients taken by the cell (examples x samples)
seconds, key, accuracy_key   the cell's run time and cache keys (attack cell, clean-accuracy cell)
===========================  ===========================================================================

The per-image numbers behind each row (the ASR of each attacked image, the correctness of each test image) go
to a sidecar ``<table>.images.npz`` so that resampling can keep images paired across cells.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import platform
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from payoffs.cache import CellCache
from payoffs.cell import (
    AccuracySpec,
    CellSpec,
    per_image_asr,
    run_accuracy,
    run_cell,
    summarize_accuracy,
    summarize_cell,
)
from payoffs.errors import DefdropError
from payoffs.executor import Executor, make_executor
from payoffs.io import atomic_write_bytes, atomic_write_files
from payoffs.labels import defender_label  # noqa: F401  (the one label function; re-exported here)
from payoffs.params import format_value
from payoffs.sources import CheckpointSource, ModelSource, TestData, data_for
from payoffs.strategy import AttackerStrategy, DefenderStrategy

TABLE_COLUMNS = [
    "attacker", "attack", "kappa", "c", "eps", "eot", "success_test", "attacker_params",
    "defender", "defense", "defense_params", "test_dropout",
    "model", "model_label", "slot", "dataset", "train_dropout", "recipe",
    "n_images", "n_attacks", "n_samples", "asr", "asr_low", "asr_high", "asr_std_error", "asr_interval",
    "asr_majority", "asr_believed", "l2_mean", "l2_median", "l0_mean", "linf_mean", "l2_all_mean",
    "clean_accuracy", "clean_accuracy_low", "clean_accuracy_high", "forwards", "backwards",
    "seconds", "key", "accuracy_key",
]


def load_model_refs(paths: Sequence[str | Path]) -> list[ModelSource]:
    """Open each defdrop checkpoint once (clear error if it is not one): its source, hashed and described."""
    if not paths:
        raise DefdropError("give at least one model")
    return [CheckpointSource.open(p) for p in paths]


def model_labels(models: Sequence[ModelSource]) -> dict[str, str]:
    """identity -> label, unique in this table (a clashing label gets ``@<hash prefix>``)."""
    counts: dict[str, int] = {}
    for m in models:
        counts[m.description.label] = counts.get(m.description.label, 0) + 1
    return {m.identity: m.description.label + (f"@{m.identity[:6]}" if counts[m.description.label] > 1 else "")
            for m in models}


def _params_text(params: Sequence[tuple[str, Any]]) -> str:
    return ";".join(f"{k}={format_value(v)}" for k, v in params)


def _row(model: ModelSource, label: str, several: bool, slot: str | None, data: TestData, attacker: AttackerStrategy,
         defender: DefenderStrategy, cell: dict, acc: dict) -> dict:
    nan = math.nan
    p = dict(attacker.params)
    return {
        "attacker": attacker.id, "attack": attacker.attack, "kappa": p.get("kappa", nan), "c": p.get("initial_c", nan),
        "eps": p.get("eps", nan), "eot": attacker.eot, "success_test": attacker.success_test,
        "attacker_params": _params_text(attacker.params),
        "defender": defender_label(label, defender.id, several), "defense": defender.defense,
        "defense_params": defender.params_text(), "test_dropout": defender.test_dropout,
        "model": model.identity, "model_label": label, "slot": slot or model.default_slot,
        "dataset": data.name, "train_dropout": model.description.train_dropout,
        "recipe": model.description.tag("recipe", ""),
        **summarize_cell(cell), **summarize_accuracy(acc),
    }


@dataclass
class BuildStats:
    computed: int = 0
    cached: int = 0


def _cuda_here() -> bool:
    import torch
    return torch.cuda.is_available()


def check_n_images(model: ModelSource, data: TestData, n_images: int, device: str = "cpu") -> None:
    """Fail before any cell runs when the test split has fewer than ``n_images`` correctly classified images."""
    from payoffs.evaluation import first_correct

    split = data.load_test()
    found = len(first_correct(model.load(device), split.x, split.y, n_images))
    if found < n_images:
        raise DefdropError(f"{n_images} images requested but the undefended model {model.description.label} "
                           f"classifies only {found} of the {len(split.x)} {data.identity} test images correctly")


def build_payoff_table(
    models: Sequence[ModelSource], attackers: Sequence[AttackerStrategy], defenders: Sequence[DefenderStrategy], *,
    n_images: int = 100, eval_samples: int = 20, seed: int = 0, cache_dir: str | Path = ".defdrop-cache",
    jobs: int = 1, executor: Executor | None = None, device: str = "cpu", batch_size: int = 900,
    data: TestData | None = None, slot: str | None = None, data_dir: str | Path | None = None,
    on_done: Callable[[str, int, int, dict], None] | None = None,
    progress_for: Callable[[str], Callable[[int, int], None] | None] | None = None,
    stats: BuildStats | None = None,
    on_plan: Callable[[dict[str, int], dict[str, int]], None] | None = None,
    only_cached: bool = False,
    fuse_cells: bool | None = None,
) -> pd.DataFrame:
    """Evaluate models x defenders x attackers into a DataFrame with :data:`TABLE_COLUMNS`.

    Finished cells are read from ``cache_dir``; missing ones are computed (by ``executor``, or ``jobs`` local
    processes) and stored as soon as each finishes, so an interrupted build resumes where it stopped and yields
    the same table. ``on_done(kind, done, total, record)`` reports each finished job (kind: ``accuracy`` or
    ``cell``). ``data`` (a :class:`payoffs.sources.DataSource` or :class:`~payoffs.sources.DataFile`) and ``slot``
    (a layer name of every model) override each model's own test data and defense slot; ``data_dir``: where the
    files of each model's own dataset are. Before any cell runs,
    every model is checked against its data, slot and the defenders (:func:`payoffs.preflight.check_model`). The
    per-image arrays are in ``table.attrs["per_image"]`` (see :func:`write_payoff_table`).

    ``on_plan(to_run, cached)``: before any check or job, the number of jobs to run and found in the cache, per
    kind (``accuracy``, ``cell``). ``only_cached``: run nothing; the table of the cells already in the cache (a
    row needs its attack cell and its clean-accuracy cell), e.g. the partial table of an interrupted sweep.
    ``fuse_cells``: attack cells that differ only in their dropout rate in one batch (:mod:`payoffs.fused`; the
    same records); ``None``: on CUDA devices only.
    """
    from payoffs.params import Param
    from payoffs.preflight import check_model

    n_images = Param("n_images", int, 1, low=1).check(n_images, "")
    eval_samples = Param("eval_samples", int, 1, low=1).check(eval_samples, "")
    batch_size = Param("batch_size", int, 1, low=1).check(batch_size, "")
    if not models:
        raise DefdropError("give at least one model")
    if not attackers or not defenders:
        raise DefdropError("the strategy space is empty: give at least one attacker and one defender")
    cache = CellCache(cache_dir)
    stats = stats if stats is not None else BuildStats()
    datas = {m.identity: data_for(m, data, data_dir) for m in models}
    acc_specs = {(m.identity, d): AccuracySpec(m, datas[m.identity], d, eval_samples, seed, slot, device)
                 for m in models for d in defenders}
    cell_specs = {(m.identity, d, a): CellSpec(m, datas[m.identity], a, d, n_images, eval_samples, seed, slot, device,
                                               batch_size)
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
    if on_plan is not None:
        to_run = {k: sum(kind == k for kind, _, _ in todo) for k in ("accuracy", "cell")}
        on_plan(to_run, {"accuracy": len(acc_specs) - to_run["accuracy"], "cell": len(cell_specs) - to_run["cell"]})
    if only_cached:
        todo = []
    # the checks run here, on CPU where this machine has no GPU and the cells run on a cluster's
    checks_on = "cpu" if str(device).startswith("cuda") and not _cuda_here() else device
    if todo:
        for m in models:
            check_model(m, datas[m.identity], slot, defenders, checks_on)
    if any(kind == "cell" for kind, _, _ in todo):
        for m in models:
            check_n_images(m, datas[m.identity], n_images, checks_on)
    total = len(todo)
    if fuse_cells if fuse_cells is not None else str(device).startswith("cuda"):
        todo = fused_todo(todo)
    if executor is None:
        per_job = (lambda i: progress_for(todo[i][0])) if progress_for else None
        executor = make_executor(min(jobs, max(1, len(todo))), per_job)
    finished = executor.run([(fn, spec) for _, fn, spec in todo])
    done = 0
    try:
        for i, result in finished:
            for record in result["records"] if result.get("kind") == "fused" else [result]:
                cache.put(record["key"], record)
                results[record["key"]] = record
                stats.computed += 1
                done += 1
                if on_done is not None:
                    on_done(todo[i][0], done, total, record)
    finally:
        # on Ctrl-C or an error, stop the executor's workers (cancel its futures) now, not once the traceback that
        # holds this frame is freed
        if hasattr(finished, "close"):
            finished.close()
    labels = model_labels(models)
    several = len(models) > 1
    rows, cells, accs = [], [], []
    for m in models:
        for d in defenders:
            acc = results.get(acc_specs[(m.identity, d)].key())
            if acc is None:  # only_cached: not finished yet
                continue
            accs.append(acc)
            for a in attackers:
                cell = results.get(cell_specs[(m.identity, d, a)].key())
                if cell is None:
                    continue
                cells.append(cell)
                rows.append(_row(m, labels[m.identity], several, slot, datas[m.identity], a, d, cell, acc))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table.attrs["per_image"] = PerImage(per_image_arrays(cells, accs))
    return table


def fused_todo(todo: list[tuple[str, Callable, object]]) -> list[tuple[str, Callable, object]]:
    """The jobs with the attack cells that may share a batch fused (:func:`payoffs.fused_jobs.fuse_jobs`)."""
    from payoffs.fused_jobs import FusedCells, fuse_jobs, run_fused_cells

    cells = [spec for kind, _, spec in todo if kind == "cell"]
    return [job for job in todo if job[0] != "cell"] + [
        ("cell", run_fused_cells if isinstance(job, FusedCells) else run_cell, job) for job in fuse_jobs(cells)]


@dataclass(frozen=True, eq=False)
class PerImage:
    """The per-image arrays of a table (compared by identity, so pandas can carry it in ``attrs``)."""

    arrays: dict

    @staticmethod
    def merge(parts: Sequence["PerImage"]) -> "PerImage":
        """One set of arrays from several tables' (e.g. several sweeps of one study)."""
        cells = [p.arrays for p in parts if p is not None]
        if not cells:
            return PerImage({})
        n = max(a["cell_image"].shape[1] for a in cells)
        width = max(a["accuracy_correct"].shape[1] for a in cells)

        def widen(x: np.ndarray, cols: int, fill) -> np.ndarray:
            out = np.full((x.shape[0], cols), fill, dtype=x.dtype)
            out[:, :x.shape[1]] = x
            return out

        acc_keys = np.concatenate([a["accuracy_key"] for a in cells])
        acc = np.concatenate([widen(a["accuracy_correct"], width, np.nan) for a in cells])
        _, first = np.unique(acc_keys, return_index=True)
        first = np.sort(first)
        return PerImage({"cell_key": np.concatenate([a["cell_key"] for a in cells]),
                         "cell_image": np.concatenate([widen(a["cell_image"], n, -1) for a in cells]),
                         "cell_asr": np.concatenate([widen(a["cell_asr"], n, np.nan) for a in cells]),
                         "accuracy_key": acc_keys[first], "accuracy_correct": acc[first]})


def per_image_arrays(cells: Sequence[dict], accuracies: Sequence[dict]) -> dict[str, np.ndarray]:
    """The ``<table>.images.npz`` arrays: per cell, the attacked images and their ASR; per clean-accuracy cell,
    the share of the M samples correct on each test image. Cells of one table have the same N."""
    images, asrs = zip(*(per_image_asr(c) for c in cells)) if cells else ((), ())
    accs = list(dict((a["key"], a) for a in accuracies).values())
    n_test = {len(a["correct"]) for a in accs}
    width = max(n_test) if n_test else 0
    correct = np.full((len(accs), width), np.nan)
    for i, a in enumerate(accs):
        correct[i, :len(a["correct"])] = a["correct"]
    n = max((len(x) for x in images), default=0)

    def pad(rows, fill, dtype):
        out = np.full((len(rows), n), fill, dtype=dtype)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out

    return {"cell_key": np.array([c["key"] for c in cells], dtype=str),
            "cell_image": pad(images, -1, np.int64), "cell_asr": pad(asrs, np.nan, np.float64),
            "accuracy_key": np.array([a["key"] for a in accs], dtype=str), "accuracy_correct": correct}


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
    return {"CSV": out, "JSON sidecar": out.with_suffix(".json"), "per-image sidecar": out.with_suffix(".images.npz")}


def sidecar_paths(out: str | Path) -> tuple[Path, Path]:
    """The JSON settings and the per-image npz written beside a payoff CSV."""
    paths = payoff_outputs(out)
    return paths["JSON sidecar"], paths["per-image sidecar"]


def _per_image_bytes(table: pd.DataFrame) -> bytes | None:
    per_image = table.attrs.get("per_image")
    if not (isinstance(per_image, PerImage) and per_image.arrays):
        return None
    buf = io.BytesIO()
    np.savez_compressed(buf, **per_image.arrays)
    return buf.getvalue()


def write_payoff_table(table: pd.DataFrame, out: str | Path, *, models: Sequence[ModelSource],
                       attackers: Sequence[AttackerStrategy], defenders: Sequence[DefenderStrategy],
                       n_images: int, eval_samples: int, seed: int, seconds: float | None = None,
                       extra: dict | None = None) -> Path:
    """Write ``out`` (CSV), its ``.json`` settings and its ``.images.npz`` per-image arrays as a set; returns the
    JSON path.

    All are staged under temporary names and renamed sidecars first, CSV last (``payoffs.io.atomic_write_files``):
    a full disk replaces none, and a new CSV never sits beside an old or missing sidecar. The JSON records the
    CSV's SHA-256 (``csv_sha256``), so a reader can tell the set apart from a crash between the renames.
    """
    paths = payoff_outputs(out)
    csv_bytes = table.to_csv(index=False).encode()
    labels = model_labels(models)
    settings = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "csv": paths["CSV"].name, "csv_sha256": hashlib.sha256(csv_bytes).hexdigest(),
        "models": [{"identity": m.identity, "label": labels[m.identity], "dataset": m.description.dataset,
                    "path": getattr(m, "path", None), "factory": getattr(m, "factory", None),
                    "weights": getattr(m, "weights", None), "default_slot": m.default_slot,
                    "tags": {k: v for k, v in m.description.tags}} for m in models],
        "attackers": [a.id for a in attackers], "attacker_params": [a.to_dict() for a in attackers],
        "defenders": [d.id for d in defenders], "defender_params": [d.to_dict() for d in defenders],
        "n_images": n_images, "eval_samples": eval_samples, "seed": seed,
        "cells": int(len(table)), "seconds": seconds, "machine": platform.platform(),
        "versions": _versions(), "columns": TABLE_COLUMNS, **(extra or {}),
    }
    images = _per_image_bytes(table)
    files = [(paths["JSON sidecar"], json.dumps(settings, indent=2, default=str).encode())]
    if images is not None:
        files.append((paths["per-image sidecar"], images))
    else:
        paths["per-image sidecar"].unlink(missing_ok=True)  # never leave another run's per-image data beside it
    atomic_write_files(files + [(paths["CSV"], csv_bytes)])
    return paths["JSON sidecar"]


def write_per_image(table: pd.DataFrame, out: str | Path) -> Path | None:
    """Write the table's per-image arrays beside the CSV ``out``; an old sidecar is removed if there are none."""
    path = sidecar_paths(out)[1]
    data = _per_image_bytes(table)
    if data is None:
        path.unlink(missing_ok=True)
        return None
    atomic_write_bytes(path, data)
    return path
