"""load_checkpoint on hostile bytes: one DefdropError whatever the file holds; shapes named; NaN weights refused."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from payoffs.checkpoint import FORMAT, VERSION, load_checkpoint, save_checkpoint
from payoffs.errors import DefdropError
from payoffs.models import PaperCNN


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    save_checkpoint(path, PaperCNN("mnist", 0.3), {"dataset": "mnist-5k", "train_dropout": 0.3})
    return path


def _payload(valid: Path) -> dict:
    return torch.load(valid, weights_only=True)


def _save(path: Path, payload: object) -> Path:
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.write_bytes(buf.getvalue())
    return path


def _error(path: Path) -> str:
    with pytest.raises(DefdropError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


def test_valid_checkpoint_loads(valid: Path) -> None:
    model, meta = load_checkpoint(valid)
    assert isinstance(model, PaperCNN) and meta["train_dropout"] == 0.3 and not model.training


def test_every_one_byte_file_and_first_byte_is_one_line(valid: Path, tmp_path: Path) -> None:
    """The issue's byte sweep: 256 one-byte files and the valid file with each possible first byte."""
    good = valid.read_bytes()
    path = tmp_path / "x.pt"
    for b in range(256):
        for data in (bytes([b]), bytes([b]) + good[1:], good[: 1 + b * 97]):
            path.write_bytes(data)
            try:
                load_checkpoint(path)
            except DefdropError as exc:
                assert "\n" not in str(exc)


def test_text_and_other_pickles_are_refused(tmp_path: Path) -> None:
    import pickle
    samples = [b"", b"hello world\n", b"PK\x03\x04" + b"\x00" * 40, pickle.dumps({"a": [1, 2]}),
               pickle.dumps(([], {}), protocol=2), "\u00e9".encode("utf-16")]
    for i, data in enumerate(samples):
        path = tmp_path / f"{i}.pt"
        path.write_bytes(data)
        assert "not a defdrop checkpoint" in _error(path)


@pytest.mark.parametrize("mutate,message", [
    (lambda p: p.update(state_dict={**p["state_dict"], "fc1.weight": torch.zeros(200, 1000)}),
     "tensor fc1.weight has shape (200, 1000) in the checkpoint; the architecture (mnist, 10 classes) needs "
     "(200, 1024)"),
    (lambda p: p["state_dict"].pop("out.bias"), "lacks tensor(s) out.bias"),
    (lambda p: p["state_dict"].update(extra=torch.zeros(1)), "has tensor(s) extra that the architecture"),
    (lambda p: p["state_dict"].update({"fc2.bias": [0.0] * 200}), "entry fc2.bias is a list, not a tensor"),
    (lambda p: p["state_dict"].update({"fc2.bias": torch.zeros(200, dtype=torch.int64)}), "dtype torch.int64"),
    (lambda p: p.update(state_dict=[1, 2]), "state_dict is a list"),
    (lambda p: p.update(config={"arch": "imagenet"}), "architecture 'imagenet' is not one of"),
    (lambda p: p.update(config={**p["config"], "num_classes": 10 ** 12}),
     "tensor out.weight has shape (10, 200) in the checkpoint; the architecture (mnist, 1000000000000 classes)"),
    (lambda p: p.update(config={**p["config"], "num_classes": "10"}), "num_classes '10' is not an integer"),
    (lambda p: p.update(config={**p["config"], "train_dropout": 1.5}), "training dropout rate 1.5"),
    (lambda p: p.update(config={**p["config"], "bogus": 1}), "unknown field(s) bogus"),
    (lambda p: p.update(config=None), "checkpoint has no config"),
    (lambda p: p.update(config=[1]), "config is a list, not a table"),
    (lambda p: p.pop("state_dict"), "checkpoint has no state_dict"),
    (lambda p: p.update(meta=[1]), "meta is a list"),
    (lambda p: p.update(version=torch.tensor(1)), "checkpoint version tensor(1) not supported"),
    (lambda p: p.update(version=2), "checkpoint version 2 not supported"),
    (lambda p: p.update(format="other"), "no 'defdrop-checkpoint' header"),
])
def test_malformed_payloads_are_named(valid: Path, tmp_path: Path, mutate, message: str) -> None:
    payload = _payload(valid)
    mutate(payload)
    assert message in _error(_save(tmp_path / "bad.pt", payload))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused(valid: Path, tmp_path: Path, value: float) -> None:
    """Issue 13, item 14: NaN weights gave a table of ASR 0% and accuracy 10%."""
    payload = _payload(valid)
    payload["state_dict"]["fc2.weight"][3, 4] = value
    message = _error(_save(tmp_path / "nan.pt", payload))
    assert "tensor fc2.weight holds 1 NaN or infinite value(s) of 40000" in message


def test_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    assert "is a directory" in _error(tmp_path)


def test_header_alone(tmp_path: Path) -> None:
    assert "checkpoint has no config" in _error(_save(tmp_path / "h.pt", {"format": FORMAT, "version": VERSION}))
