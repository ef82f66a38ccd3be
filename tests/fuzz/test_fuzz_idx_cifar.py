"""Fuzz the dataset readers: IDX files (plain and gzip) and CIFAR-10 python batches."""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

from payoffs.data import read_cifar_batch, read_idx
from tests.fuzz.mutate import CORPUS, FUZZ, fuzz_bytes, only_defdrop_errors

IDX_SEEDS = [p.read_bytes() for p in sorted(CORPUS.glob("*idx*")) if p.suffix != ".gz"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_idx_seeds_are_valid() -> None:
    assert len(IDX_SEEDS) >= 4
    for path in CORPUS.glob("*idx*"):
        assert read_idx(path).size > 0


@FUZZ
@given(data=fuzz_bytes(IDX_SEEDS, hot=32))
def test_fuzz_idx(workdir: Path, data: bytes) -> None:
    path = workdir / "x-idx3-ubyte"
    path.write_bytes(data)
    only_defdrop_errors(read_idx, path)


@FUZZ
@given(data=fuzz_bytes([(CORPUS / "images-idx3-ubyte.gz").read_bytes()] +
                       [gzip.compress(s, mtime=0) for s in IDX_SEEDS], hot=32))
def test_fuzz_idx_gzip(workdir: Path, data: bytes) -> None:
    path = workdir / "x-idx3-ubyte.gz"
    path.write_bytes(data)
    only_defdrop_errors(read_idx, path)


def _cifar_seeds() -> list[bytes]:
    """Batches shaped like CIFAR-10's own (a dict with bytes keys; str keys too), 2 images each."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": [3, 8], b"data": data,
             b"filenames": [b"a.png", b"b.png"]}
    return [pickle.dumps(batch, protocol=3), pickle.dumps({"data": data, "labels": np.array([1, 2])}, protocol=4)]


CIFAR_SEEDS = _cifar_seeds()


def test_cifar_seeds_are_valid(workdir: Path) -> None:
    for i, seed in enumerate(CIFAR_SEEDS):
        (workdir / f"seed{i}").write_bytes(seed)
        images, labels = read_cifar_batch(workdir / f"seed{i}")
        assert images.shape == (2, 3, 32, 32) and labels.shape == (2,)


@FUZZ
@given(data=fuzz_bytes(CIFAR_SEEDS, hot=160))
def test_fuzz_cifar_batch(workdir: Path, data: bytes) -> None:
    path = workdir / "data_batch_1"
    path.write_bytes(data)
    only_defdrop_errors(read_cifar_batch, path)
