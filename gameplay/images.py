"""Per-image data of a payoff table (the sidecar ``X.images.npz`` of ``X.csv``) and the paired bootstrap over images.

All ASR cells of one model are measured on the same attacked test images, and all defenders' clean accuracies on
the same test split, so the estimates of different cells are correlated: a hard image is hard for every defender.
Resampling them one by one, as if independent, gets every comparison wrong. Here the unit of resampling is the
test image, drawn once per bootstrap replicate and applied to every cell and every accuracy (the Poisson bootstrap,
Hanley & MacGibbon 2006): each test-image index gets a weight ``w_i ~ Poisson(1)``, and every cell's ASR and every
accuracy is the weighted mean of its images' values. A replicate in which all of some cell's images get weight 0
is drawn again (the cell's mean would be undefined), so a cell of N images is never empty.

The sidecar (numpy ``.npz``, read with ``allow_pickle=False``):

================  ============  ====================================================================================
``cell_key``      (C,) str      a cell's cache key, the CSV's ``key`` column
``cell_image``    (C, N) int    test-image index of each attacked image, in order (distinct within a cell)
``cell_asr``      (C, N) float  per-image ASR: mean over that image's attacks and the M defender samples, in [0, 1]
``accuracy_key``  (D,) str      a defender's clean-accuracy key, the CSV's ``accuracy_key`` column
``accuracy_correct`` (D, T) float  per test image (column = test-image index), the share of M samples correct
================  ============  ====================================================================================

A differences (or any linear combination) of estimates gets its interval from :func:`contrast`: paired over
images when every estimate is in the sidecar, otherwise from the estimates' standard errors combined as if
independent (the result says which).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats as sps

from payoffs.errors import DefdropError

SIDECAR_SUFFIX = ".images.npz"
ARRAYS = ("cell_key", "cell_image", "cell_asr", "accuracy_key", "accuracy_correct")
REPLICATES = 2000
"""Bootstrap replicates for an interval of a contrast."""
PAIRED = "paired bootstrap over test images (Poisson weights, images drawn once for every cell)"
INDEPENDENT = "standard errors combined as if independent (normal approximation)"
_CHUNK = 256  # replicates per block of weights, bounding memory for large test splits


def sidecar_path(csv_path: str | Path) -> Path:
    """``X.csv`` -> ``X.images.npz``."""
    path = Path(csv_path)
    return path.with_name((path.stem if path.suffix == ".csv" else path.name) + SIDECAR_SUFFIX)


@dataclass(frozen=True, eq=False)
class ImageData:
    """Per-image values of a payoff table's cells and accuracies, validated (see the module docstring)."""

    cell_key: tuple[str, ...]
    cell_image: np.ndarray
    cell_asr: np.ndarray
    accuracy_key: tuple[str, ...]
    accuracy_correct: np.ndarray
    source: str = "<memory>"

    @classmethod
    def from_arrays(cls, cell_key, cell_image, cell_asr, accuracy_key, accuracy_correct,
                    source: str = "<memory>") -> "ImageData":
        """Validate five arrays; any problem is a one-line ``DefdropError`` naming ``source``."""
        def fail(message: str) -> DefdropError:
            return DefdropError(f"per-image data {source}: {message}")

        keys = _keys(cell_key, "cell_key", fail)
        acc_keys = _keys(accuracy_key, "accuracy_key", fail)
        image = np.asarray(cell_image)
        asr = np.asarray(cell_asr)
        correct = np.asarray(accuracy_correct)
        if image.ndim != 2 or image.shape[0] != len(keys):
            raise fail(f"cell_image has shape {image.shape}, expected ({len(keys)}, N)")
        if not np.issubdtype(image.dtype, np.integer):
            raise fail(f"cell_image has dtype {image.dtype}, expected integers")
        if asr.shape != image.shape:
            raise fail(f"cell_asr has shape {asr.shape}, cell_image {image.shape}")
        if correct.ndim != 2 or correct.shape[0] != len(acc_keys):
            raise fail(f"accuracy_correct has shape {correct.shape}, expected ({len(acc_keys)}, n_test)")
        for name, values in (("cell_asr", asr), ("accuracy_correct", correct)):
            if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
                raise fail(f"{name} has dtype {values.dtype}, expected numbers")
            values = values.astype(np.float64)
            if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
                raise fail(f"{name} has values outside [0, 1] (or NaN)")
        if image.size and image.shape[1] == 0:
            raise fail("cells with no attacked image")
        if image.size and image.min() < 0:
            raise fail(f"cell_image has the negative index {int(image.min())}")
        if len(acc_keys) and image.size and image.max() >= correct.shape[1]:
            raise fail(f"cell_image has index {int(image.max())}, but accuracy_correct covers "
                       f"{correct.shape[1]} test images")
        for c in range(image.shape[0]):
            if np.unique(image[c]).size != image.shape[1]:
                raise fail(f"cell {keys[c]} lists a test image twice")
        return cls(keys, image.astype(np.int64), asr.astype(np.float64), acc_keys, correct.astype(np.float64),
                   source)

    # ------------------------------------------------------------------ lookup
    def cell_rows(self, keys: Sequence[str]) -> np.ndarray:
        index = {k: i for i, k in enumerate(self.cell_key)}
        return np.array([index[k] for k in keys], dtype=np.int64)

    def accuracy_rows(self, keys: Sequence[str]) -> np.ndarray:
        index = {k: i for i, k in enumerate(self.accuracy_key)}
        return np.array([index[k] for k in keys], dtype=np.int64)

    def has(self, key: str | None, kind: str = "asr") -> bool:
        return key is not None and key in (self.cell_key if kind == "asr" else self.accuracy_key)

    def cell_means(self, rows: np.ndarray) -> np.ndarray:
        return self.cell_asr[rows].mean(axis=1)

    def accuracy_means(self, rows: np.ndarray) -> np.ndarray:
        return self.accuracy_correct[rows].mean(axis=1)

    def subset(self, cell_keys: Sequence[str], accuracy_keys: Sequence[str] = ()) -> "ImageData":
        """The data of some cells and accuracies only (e.g. for a game table cut from a larger one)."""
        c, a = self.cell_rows(list(cell_keys)), self.accuracy_rows(list(dict.fromkeys(accuracy_keys)))
        return ImageData(tuple(self.cell_key[i] for i in c), self.cell_image[c], self.cell_asr[c],
                         tuple(self.accuracy_key[i] for i in a), self.accuracy_correct[a], self.source)

    @classmethod
    def concat(cls, parts: Sequence["ImageData"], source: str = "<memory>") -> "ImageData":
        """Several sweeps' per-image data as one (cells appended; an accuracy key in several parts must hold the
        same values in each, as one defender measured once)."""
        if not parts:
            raise DefdropError("no per-image data to combine")
        accuracy: dict[str, np.ndarray] = {}
        for part in parts:
            for key, row in zip(part.accuracy_key, part.accuracy_correct):
                if key in accuracy and not np.array_equal(accuracy[key], row):
                    raise DefdropError(f"per-image data {part.source}: accuracy {key} differs from another part's")
                accuracy.setdefault(key, row)
        widths = {len(v) for v in accuracy.values()}
        if len(widths) > 1:
            raise DefdropError(f"per-image data to combine covers test splits of different sizes {sorted(widths)}")
        return cls.from_arrays(np.array([k for p in parts for k in p.cell_key], dtype=str),
                               np.concatenate([p.cell_image for p in parts]),
                               np.concatenate([p.cell_asr for p in parts]),
                               np.array(list(accuracy), dtype=str),
                               np.array(list(accuracy.values())).reshape(len(accuracy), widths.pop() if widths else 0),
                               source)

    def to_bytes(self) -> bytes:
        """The sidecar's bytes (``np.savez``; keys stored as unicode arrays, no pickles)."""
        buf = io.BytesIO()
        np.savez(buf, cell_key=np.array(self.cell_key, dtype=str), cell_image=self.cell_image,
                 cell_asr=self.cell_asr, accuracy_key=np.array(self.accuracy_key, dtype=str),
                 accuracy_correct=self.accuracy_correct)
        return buf.getvalue()

    # ------------------------------------------------------------------ resampling
    def resample(self, cell_rows: np.ndarray, accuracy_rows: np.ndarray, replicates: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``replicates`` paired bootstrap draws: (R, len(cell_rows)) ASRs and (R, len(accuracy_rows)) accuracies,
        every draw weighting the same test image alike in every cell and accuracy.

        Weights are drawn only for the test images the requested cells and accuracies use (independent Poisson
        weights, so leaving the others out changes nothing but the work).
        """
        cell_rows = np.asarray(cell_rows, dtype=np.int64)
        accuracy_rows = np.asarray(accuracy_rows, dtype=np.int64)
        values = self.cell_asr[cell_rows]
        correct = self.accuracy_correct[accuracy_rows]
        n_test = correct.shape[1] if len(accuracy_rows) else 0
        used = np.union1d(self.cell_image[cell_rows].ravel(), np.arange(n_test))
        images = np.searchsorted(used, self.cell_image[cell_rows])  # positions in ``used``; test images come first
        out_c = np.empty((replicates, len(cell_rows)))
        out_a = np.empty((replicates, len(accuracy_rows)))
        done, tries = 0, 0
        while done < replicates and tries < 1000:
            tries += 1
            w = rng.poisson(1.0, size=(min(_CHUNK, replicates - done), used.size)).astype(np.float64)
            tc = w[:, images].sum(axis=2)                       # (r, k): each cell's total weight
            ok = (tc > 0).all(axis=1)
            if n_test:
                ok &= w[:, :n_test].sum(axis=1) > 0
            w, tc = w[ok][:replicates - done], tc[ok][:replicates - done]
            take = len(w)
            if take == 0:
                continue
            out_c[done:done + take] = (w[:, images] * values).sum(axis=2) / tc
            if n_test:
                wa = w[:, :n_test]
                out_a[done:done + take] = (wa @ correct.T) / wa.sum(axis=1, keepdims=True)
            done += take
        if done < replicates:
            raise DefdropError(f"per-image data {self.source}: could not draw {replicates} bootstrap replicates "
                               "with every cell non-empty")
        return out_c, out_a


def _keys(values, name: str, fail) -> tuple[str, ...]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise fail(f"{name} has shape {arr.shape}, expected one dimension")
    text = arr.dtype.kind in "US" or (arr.dtype.kind == "O" and all(isinstance(k, str) for k in arr.tolist()))
    if arr.size and not text:
        raise fail(f"{name} has dtype {arr.dtype}, expected strings")
    try:
        keys = tuple(k.decode() if isinstance(k, bytes) else str(k) for k in arr.tolist())
    except UnicodeDecodeError:
        raise fail(f"{name} holds bytes that are not text") from None
    if any(not k.strip() for k in keys):
        raise fail(f"{name} has an empty key")
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise fail(f"{name} holds {dup!r} twice")
    return keys


def read_image_data(path: str | Path) -> ImageData:
    """Read and validate a ``.images.npz`` sidecar; every problem is a one-line ``DefdropError``."""
    path = Path(path)
    if not path.is_file():
        raise DefdropError(f"per-image data {path} does not exist")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one line, whatever numpy raises
        raise DefdropError(f"per-image data {path} is not a readable .npz without pickles: {_first(exc)}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DefdropError(f"per-image data {path} is a single array, not an .npz archive of {', '.join(ARRAYS)}")
    with npz:
        missing = [k for k in ARRAYS if k not in npz.files]
        if missing:
            raise DefdropError(f"per-image data {path}: missing array(s) {', '.join(missing)} "
                               f"(needs {', '.join(ARRAYS)})")
        try:
            arrays = {k: npz[k] for k in ARRAYS}
        except Exception as exc:  # noqa: BLE001 - pickled members, truncated or corrupt entries
            raise DefdropError(f"per-image data {path} is not a readable .npz without pickles: "
                               f"{_first(exc)}") from None
    return ImageData.from_arrays(source=str(path), **arrays)


def _first(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__


# --------------------------------------------------------------------------- intervals of contrasts
@dataclass(frozen=True)
class Estimate:
    """One estimate of a payoff table: a cell's ASR (``kind='asr'``, ``key`` = the cell key) or a defender's clean
    accuracy (``kind='accuracy'``, ``key`` = its accuracy key); ``std_error`` NaN when unknown."""

    value: float
    std_error: float
    key: str | None = None
    kind: str = "asr"


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval at ``level``; ``method`` says how it was computed."""

    estimate: float
    low: float
    high: float
    level: float
    paired: bool
    method: str

    @property
    def known(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


def contrast(estimates: Sequence[Estimate], weights: Sequence[float], images: ImageData | None = None, *,
             level: float, replicates: int = REPLICATES, seed: int = 0) -> Interval:
    """``sum_k weights[k] * estimates[k]`` with its interval.

    Paired (percentile bootstrap over test images, :meth:`ImageData.resample`) when ``images`` holds every
    estimate's key; otherwise ``value +- z * sqrt(sum_k weights[k]^2 se_k^2)``, the estimates taken as independent.
    """
    w = np.asarray(weights, dtype=float)
    value = float(sum(wk * e.value for wk, e in zip(w, estimates)))
    if images is not None and all(images.has(e.key, e.kind) for e in estimates):
        cells = [k for k, e in enumerate(estimates) if e.kind == "asr"]
        accs = [k for k, e in enumerate(estimates) if e.kind != "asr"]
        rc, ra = images.resample(images.cell_rows([estimates[k].key for k in cells]),
                                 images.accuracy_rows([estimates[k].key for k in accs]), replicates,
                                 np.random.default_rng(seed))
        draws = rc @ w[cells] + (ra @ w[accs] if accs else 0.0)
        if np.ptp(draws) > 0:
            alpha = (1.0 - level) / 2.0
            low, high = np.quantile(draws, [alpha, 1.0 - alpha])
            return Interval(value, float(min(low, value)), float(max(high, value)), level, True, PAIRED)
        # Every image gives the same contrast (e.g. two cells at 0% on every image): resampling images cannot
        # show the uncertainty, so fall through to the cells' own standard errors (exact ones at 0% and 100%).
    se = math.sqrt(sum((wk * e.std_error) ** 2 for wk, e in zip(w, estimates)))
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    method = INDEPENDENT if images is None else INDEPENDENT + " (paired draws all equal)"
    return Interval(value, value - z * se, value + z * se, level, False, method)


def difference(a: Estimate, b: Estimate, images: ImageData | None = None, *, level: float,
               replicates: int = REPLICATES, seed: int = 0) -> Interval:
    """``a - b`` with its interval: paired over images where both are in ``images``, else independent."""
    return contrast((a, b), (1.0, -1.0), images, level=level, replicates=replicates, seed=seed)
