"""Your own test data: one ``.npz`` or ``.pt`` file with the images ``x`` and the labels ``y``.

=============  ==========================================================================================
``x``          (N, C, H, W): float (16, 32 or 64 bit) in [0, 1], or uint8 (0..255, scaled by 1/255)
``y``          (N,): integer labels 0 .. K-1
``num_classes``  optional integer scalar K, the number of classes (default: the largest label + 1); give it when
               some classes have no test image, so that it matches the model's number of outputs
=============  ==========================================================================================

``.npz`` files are read with ``numpy.load(allow_pickle=False)`` (``np.savez("test.npz", x=x, y=y)``), ``.pt`` files
with ``torch.load(weights_only=True)`` (``torch.save({"x": x, "y": y}, "test.pt")``, tensors or arrays). The file
is untrusted bytes: every problem (not such a file, a missing key, wrong dimensions or dtype, values outside
[0, 1] or NaN, negative labels, x and y of different lengths) is a one-line :class:`payoffs.errors.DefdropError`
naming the file. Whether the labels fit the model's outputs is checked against the model
(:func:`payoffs.preflight.check_model`).
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from payoffs.errors import DefdropError, untrusted

SUFFIXES = (".npz", ".pt", ".pth")
FLOAT_DTYPES = (np.float16, np.float32, np.float64)
MAX_LABEL = 2 ** 31 - 1


def _arrays(path: Path) -> dict[str, Any]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files if name in ("x", "y", "num_classes")} | {
                "_names": list(npz.files)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            if "weights_only" not in str(exc).lower():
                raise
            raise DefdropError(f"{path}: holds objects that weights_only loading refuses; save a dict of tensors "
                               "{'x': ..., 'y': ...}") from None
    if not isinstance(payload, dict):
        raise DefdropError(f"{path}: holds a {type(payload).__name__}, not a dict with 'x' and 'y'")
    return {k: payload[k] for k in ("x", "y", "num_classes") if k in payload} | {
        "_names": [str(k) for k in payload]}


def _as_array(path: Path, name: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (bool, int, float)):
        return np.asarray(value)
    raise DefdropError(f"{path}: '{name}' is a {type(value).__name__}, not an array")


def _shape(a: np.ndarray) -> str:
    return "(" + ", ".join(str(d) for d in a.shape) + ")"


def _images(path: Path, x: np.ndarray) -> np.ndarray:
    if x.ndim != 4:
        hint = "; add the channel axis, e.g. x[:, None]" if x.ndim == 3 else ""
        raise DefdropError(f"{path}: x has shape {_shape(x)}, not (N, C, H, W){hint}")
    if min(x.shape) < 1:
        raise DefdropError(f"{path}: x has shape {_shape(x)}: no images")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype not in FLOAT_DTYPES:
        raise DefdropError(f"{path}: x has dtype {x.dtype}; expected float in [0, 1] or uint8 (0..255)")
    x = x.astype(np.float32)
    bad = int((~np.isfinite(x)).sum())
    if bad:
        raise DefdropError(f"{path}: x holds {bad} NaN or infinite value(s)")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise DefdropError(f"{path}: x spans [{low:g}, {high:g}]; float images must lie in [0, 1] (scale 0..255 "
                           "images by 1/255, or store them as uint8)")
    return x


def _labels(path: Path, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1:
        raise DefdropError(f"{path}: y has shape {_shape(y)}, not (N,) (one integer label per image)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DefdropError(f"{path}: y has dtype {y.dtype}; labels must be integers")
    if len(y) != n:
        raise DefdropError(f"{path}: {len(y)} labels in y for {n} images in x")
    if int(y.min()) < 0:
        raise DefdropError(f"{path}: y holds the negative label {int(y.min())}; labels are 0 .. classes - 1")
    if int(y.max()) > MAX_LABEL:
        raise DefdropError(f"{path}: y holds the label {int(y.max())}, too large for a class index")
    return y.astype(np.int64)


def _num_classes(path: Path, value: np.ndarray | None, y: np.ndarray) -> int:
    top = int(y.max()) + 1
    if value is None:
        if top < 2:
            raise DefdropError(f"{path}: every label is 0; a classifier needs two classes or more (store "
                               "num_classes if some classes have no test image)")
        return top
    if value.ndim != 0 or not np.issubdtype(value.dtype, np.integer):
        raise DefdropError(f"{path}: num_classes is {value.dtype} of shape {_shape(value)}, not an integer")
    k = int(value)
    if k < 2 or k > MAX_LABEL:
        raise DefdropError(f"{path}: num_classes {k} must be at least 2")
    if top > k:
        raise DefdropError(f"{path}: y holds the label {top - 1} but num_classes is {k}")
    return k


def read_test_data(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(x float32 (N, C, H, W) in [0, 1], y int64 (N,), num_classes)`` from a ``.npz`` or ``.pt`` file."""
    path = Path(path)
    if path.is_dir():
        raise DefdropError(f"{path}: is a directory, not a test data file")
    if not path.is_file():
        raise DefdropError(f"{path}: test data file not found")
    if path.suffix not in SUFFIXES:
        raise DefdropError(f"{path}: test data must be a .npz or .pt file (arrays x and y)")
    with untrusted(f"{path}: not a test data file ({path.suffix} with arrays x and y)"):
        raw = _arrays(path)
        names = raw.pop("_names")
        for key, what in (("x", "the images, (N, C, H, W)"), ("y", "the labels, (N,)")):
            if key not in raw:
                holds = f"; it holds {', '.join(map(str, names[:8]))}" if names else "; it is empty"
                raise DefdropError(f"{path}: no '{key}' ({what}){holds}")
        x = _images(path, _as_array(path, "x", raw["x"]))
        y = _labels(path, _as_array(path, "y", raw["y"]), len(x))
        k = _num_classes(path, _as_array(path, "num_classes", raw["num_classes"]) if "num_classes" in raw else None,
                         y)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)), k


def data_hash(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> str:
    """SHA-256 (16 hex digits) of the decoded arrays: the same images and labels are the same data, whatever the
    container (``.npz`` or ``.pt``, uint8 or float) and the file's name."""
    h = hashlib.sha256(f"{tuple(x.shape)} {tuple(y.shape)} {num_classes}\n".encode())
    h.update(x.contiguous().numpy().tobytes())
    h.update(y.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
