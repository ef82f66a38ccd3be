"""Fuzz the checkpoint reader (payoffs.checkpoint.load_checkpoint): mutated bytes of valid checkpoints (the zip
format and the legacy pickle stream) and payloads generated field by field."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from payoffs.checkpoint import FORMAT, VERSION, load_checkpoint
from payoffs.models import PaperCNN
from tests.fuzz.mutate import FUZZ, fuzz_bytes, only_defdrop_errors


def _save(payload: object, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(payload, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def _valid_payload() -> dict:
    torch.manual_seed(0)
    model = PaperCNN("mnist", 0.3)
    return {"format": FORMAT, "version": VERSION, "config": model.config(),
            "meta": {"dataset": "mnist-5k", "train_dropout": 0.3}, "state_dict": model.state_dict()}


VALID = _valid_payload()
SEEDS = [_save(VALID), _save(VALID, legacy=True),
         _save({"format": FORMAT, "version": VERSION, "config": {}, "meta": {}, "state_dict": {"w": torch.ones(2)}})]

scalars = st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                      max_leaves=6)
tensors = st.lists(st.floats(width=32), max_size=6).map(lambda v: torch.tensor(v, dtype=torch.float32)) | \
    st.sampled_from([torch.zeros(0), torch.zeros(200, 1024), torch.ones(10, 200), torch.zeros(3, dtype=torch.int8),
                     torch.full((10,), float("nan"))])
config_keys = st.sampled_from(["arch", "train_dropout", "dropout_layer", "num_classes", "other"])
configs = st.just(VALID["config"]) | st.dictionaries(config_keys, values | st.sampled_from(
    ["mnist", "cifar", "fc1", "fc2", 0.3, 10, 2, 10 ** 12, -1, float("nan")]), max_size=4) | values


@st.composite
def state_dicts(draw) -> object:
    choice = draw(st.sampled_from(("valid", "edited", "edited", "random")))
    if choice == "random":
        return draw(values | st.dictionaries(st.text(max_size=8), tensors, max_size=3))
    state = dict(VALID["state_dict"])
    if choice == "edited":
        names = sorted(state)
        for _ in range(draw(st.integers(1, 3))):
            name = draw(st.sampled_from(names) | st.text(max_size=8))
            if draw(st.booleans()):
                state.pop(name, None)
            else:
                state[name] = draw(tensors | values)
    return state


@st.composite
def payloads(draw) -> object:
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    return {"format": draw(st.just(FORMAT) | values), "version": draw(st.just(VERSION) | values),
            "config": draw(configs), "meta": draw(st.just({"dataset": "mnist-5k"}) | values),
            "state_dict": draw(state_dicts())}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_seeds(workdir: Path) -> None:
    for i, seed in enumerate(SEEDS[:2]):
        (workdir / f"seed{i}.pt").write_bytes(seed)
        assert isinstance(load_checkpoint(workdir / f"seed{i}.pt")[0], PaperCNN)


@FUZZ
@given(data=fuzz_bytes(SEEDS, hot=4096))
def test_fuzz_checkpoint_bytes(workdir: Path, data: bytes) -> None:
    path = workdir / "m.pt"
    path.write_bytes(data)
    only_defdrop_errors(load_checkpoint, path)


@FUZZ
@given(payload=payloads(), legacy=st.booleans())
def test_fuzz_checkpoint_payloads(workdir: Path, payload: object, legacy: bool) -> None:
    path = workdir / "p.pt"
    path.write_bytes(_save(payload, legacy))
    only_defdrop_errors(load_checkpoint, path)
