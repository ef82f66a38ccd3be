"""Fuzz the user test-data reader (payoffs.datafile.read_test_data): mutated bytes of valid .npz and .pt files,
and files written from generated arrays (any dtype, shape and values, keys present or not)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from payoffs.datafile import read_test_data
from tests.fuzz.mutate import FUZZ, fuzz_bytes, only_defdrop_errors

RNG = np.random.default_rng(0)
X_U8 = RNG.integers(0, 256, size=(3, 1, 4, 4), dtype=np.uint8)
Y = np.array([0, 2, 1])


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _pt(payload: object) -> bytes:
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


NPZ_SEEDS = [_npz(x=X_U8, y=Y), _npz(x=X_U8.astype(np.float32) / 255, y=Y, num_classes=np.array(4)),
             _npz(x=X_U8, y=Y.astype(np.uint8))]
PT_SEEDS = [_pt({"x": torch.from_numpy(X_U8), "y": torch.from_numpy(Y)}),
            _pt({"x": torch.rand(2, 3, 2, 2), "y": torch.tensor([1, 0]), "num_classes": 3})]

dtypes = st.sampled_from([np.uint8, np.int8, np.int64, np.uint64, np.float16, np.float32, np.float64, np.bool_,
                          np.complex64])
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4))


@st.composite
def array_sets(draw) -> dict[str, np.ndarray]:
    out = {}
    for key, default in (("x", X_U8), ("y", Y), ("num_classes", np.array(3))):
        choice = draw(st.sampled_from(("valid", "random", "absent")))
        if choice == "valid":
            out[key] = default
        elif choice == "random":
            out[key] = draw(arrays)
    if draw(st.booleans()):
        out[draw(st.sampled_from(["images", "labels", "extra"]))] = draw(arrays)
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-data")


def test_seeds(workdir: Path) -> None:
    for i, seed in enumerate(NPZ_SEEDS):
        (workdir / f"s{i}.npz").write_bytes(seed)
        x, y, k = read_test_data(workdir / f"s{i}.npz")
        assert x.shape == (3, 1, 4, 4) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        assert k == (4 if i == 1 else 3)
    for i, seed in enumerate(PT_SEEDS):
        (workdir / f"s{i}.pt").write_bytes(seed)
        assert read_test_data(workdir / f"s{i}.pt")[2] == 3


@FUZZ
@given(data=fuzz_bytes(NPZ_SEEDS, hot=512))
def test_fuzz_npz_bytes(workdir: Path, data: bytes) -> None:
    path = workdir / "m.npz"
    path.write_bytes(data)
    only_defdrop_errors(read_test_data, path)


@FUZZ
@given(data=fuzz_bytes(PT_SEEDS, hot=1024))
def test_fuzz_pt_bytes(workdir: Path, data: bytes) -> None:
    path = workdir / "m.pt"
    path.write_bytes(data)
    only_defdrop_errors(read_test_data, path)


@FUZZ
@given(values=array_sets(), as_pt=st.booleans())
def test_fuzz_arrays(workdir: Path, values: dict[str, np.ndarray], as_pt: bool) -> None:
    if as_pt:
        path = workdir / "a.pt"
        path.write_bytes(_pt({k: torch.from_numpy(np.ascontiguousarray(v)) if v.dtype != np.uint64 else v.tolist()
                              for k, v in values.items()}))
    else:
        path = workdir / "a.npz"
        path.write_bytes(_npz(**values))
    only_defdrop_errors(read_test_data, path)
