"""IDX and CIFAR-10 readers on tiny files written here, valid and broken; the bundled real datasets."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from payoffs.data import DATASETS, FASHION_MNIST_DIR, load_dataset, read_cifar_batch, read_idx
from payoffs.errors import DefdropError


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist_dir(directory: Path, n_train: int = 6, n_test: int = 4, gz: bool = False) -> dict:
    rng = np.random.default_rng(1)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        arrays[prefix] = (images, labels)
        for kind, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            name = f"{prefix}-{kind}" + (".gz" if gz else "")
            data = idx_bytes(arr)
            (directory / name).write_bytes(gzip.compress(data) if gz else data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    arrays = write_mnist_dir(tmp_path, gz=gz)
    ds = load_dataset("mnist", tmp_path)
    images, labels = arrays["train"]
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    np.testing.assert_allclose(ds.x_train[:, 0].numpy() * 255, images, atol=1e-4)
    assert ds.y_train.tolist() == labels.tolist()
    assert 0.0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1.0


def test_idx_errors_name_file_and_problem(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path)
    img = tmp_path / "train-images-idx3-ubyte"
    good = img.read_bytes()

    img.write_bytes(b"\x00\x00\x07\x03" + good[4:])
    with pytest.raises(DefdropError, match=r"train-images-idx3-ubyte: wrong magic number"):
        load_dataset("mnist", tmp_path)

    img.write_bytes(good[:-10])
    with pytest.raises(DefdropError, match=r"train-images-idx3-ubyte: truncated"):
        load_dataset("mnist", tmp_path)

    img.write_bytes(good[:6])
    with pytest.raises(DefdropError, match=r"truncated IDX header"):
        load_dataset("mnist", tmp_path)

    img.write_bytes(good)
    lbl = tmp_path / "train-labels-idx1-ubyte"
    lbl.write_bytes(idx_bytes(np.zeros(5, dtype=np.uint8)))
    with pytest.raises(DefdropError, match=r"5 labels do not match 6 images"):
        load_dataset("mnist", tmp_path)

    lbl.unlink()
    with pytest.raises(DefdropError, match=r"train-labels-idx1-ubyte: missing file"):
        load_dataset("mnist", tmp_path)

    with pytest.raises(DefdropError, match=r"does not exist"):
        load_dataset("mnist", tmp_path / "nope")
    with pytest.raises(DefdropError, match=r"needs the directory of its files"):
        load_dataset("mnist", None)


def test_corrupt_gzip_is_one_line_error(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path, gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DefdropError, match=r"t10k-images-idx3-ubyte.gz: cannot read"):
        load_dataset("mnist", tmp_path)


def write_cifar_dir(directory: Path, n: int = 3) -> None:
    rng = np.random.default_rng(2)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, size=n).tolist(), b"batch_label": name.encode()}
        with open(directory / name, "wb") as fh:
            pickle.dump(batch, fh)


def test_cifar_batches(tmp_path: Path) -> None:
    write_cifar_dir(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    raw = pickle.load(open(tmp_path / "test_batch", "rb"))
    # channel-major rows: the first 1024 bytes are the red plane
    np.testing.assert_allclose(ds.x_test[0, 0].flatten().numpy() * 255, raw[b"data"][0, :1024], atol=1e-4)
    assert ds.y_test.tolist() == raw[b"labels"]


def test_cifar_errors(tmp_path: Path) -> None:
    write_cifar_dir(tmp_path)
    with open(tmp_path / "data_batch_2", "wb") as fh:
        pickle.dump({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2]}, fh)
    with pytest.raises(DefdropError, match=r"data_batch_2: 3 labels do not match 4 images"):
        load_dataset("cifar10", tmp_path)
    with open(tmp_path / "data_batch_2", "wb") as fh:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, fh)
    with pytest.raises(DefdropError, match=r"data_batch_2: 'data' must be uint8 of shape"):
        load_dataset("cifar10", tmp_path)
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps({b"data": 1})[:-3])
    with pytest.raises(DefdropError, match=r"data_batch_2: not a CIFAR-10 python batch"):
        load_dataset("cifar10", tmp_path)
    (tmp_path / "test_batch").unlink()
    with pytest.raises(DefdropError, match=r"test_batch: missing file"):
        load_dataset("cifar10", tmp_path)


def test_cifar_reader_refuses_code_in_pickles(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    (tmp_path / "batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DefdropError, match=r"forbidden global builtins.print"):
        read_cifar_batch(tmp_path / "batch")


def test_read_idx_rejects_non_idx(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"hello world")
    with pytest.raises(DefdropError, match="wrong magic number"):
        read_idx(path)


def test_mnist5k_split(mnist5k) -> None:
    assert mnist5k.x_train.shape == (4000, 1, 28, 28) and mnist5k.x_test.shape == (1000, 1, 28, 28)
    assert mnist5k.y_test.bincount().tolist() == [100] * 10
    assert mnist5k.y_train.bincount().tolist() == [400] * 10
    assert float(mnist5k.x_train.max()) == 1.0 and float(mnist5k.x_train.min()) == 0.0
    again = load_dataset("mnist-5k")
    assert bool((again.y_test == mnist5k.y_test).all()) and bool((again.x_test == mnist5k.x_test).all())


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_real_files() -> None:
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.y_train.bincount().tolist() == [6000] * 10


def test_unknown_dataset() -> None:
    with pytest.raises(DefdropError, match="unknown dataset 'svhn'"):
        load_dataset("svhn")
    assert "mnist-5k" in DATASETS
