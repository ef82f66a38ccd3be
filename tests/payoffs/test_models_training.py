"""Architectures, training determinism, checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from payoffs.checkpoint import load_checkpoint, save_checkpoint, weights_hash
from payoffs.data import Dataset
from payoffs.errors import DefdropError
from payoffs.models import PaperCNN, architecture_for
from payoffs.training import TrainConfig, accuracy, train


def test_table1_shapes_and_parameter_counts() -> None:
    mnist, cifar = PaperCNN("mnist"), PaperCNN("cifar")
    assert mnist(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert cifar(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert mnist.fc1.in_features == 64 * 4 * 4 and mnist.fc1.out_features == 200
    assert cifar.fc1.in_features == 128 * 5 * 5 and cifar.fc1.out_features == 256
    convs = [m.out_channels for m in mnist.features if isinstance(m, torch.nn.Conv2d)]
    assert convs == [32, 32, 64, 64]
    assert architecture_for((3, 32, 32)) == "cifar"
    with pytest.raises(DefdropError):
        architecture_for((1, 32, 32))


def test_dropout_layer_is_configurable() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    for layer in ("fc1", "fc2"):
        model = PaperCNN("mnist", 0.5, layer)
        calls: list[int] = []
        model.dropout.register_forward_hook(lambda m, i, o, calls=calls: calls.append(i[0].shape[1]))
        model.train()(x)
        assert calls == [200]
    with pytest.raises(DefdropError):
        PaperCNN("mnist", 0.5, "conv1")


def test_train_dropout_only_in_train_mode() -> None:
    torch.manual_seed(0)
    model = PaperCNN("mnist", 0.5)
    x = torch.rand(3, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_same_seed_same_weights(mnist5k: Dataset) -> None:
    small = Dataset("tiny", mnist5k.x_train[:256], mnist5k.y_train[:256], mnist5k.x_test[:64], mnist5k.y_test[:64])
    a = train(small, TrainConfig(epochs=1, seed=3)).model
    b = train(small, TrainConfig(epochs=1, seed=3)).model
    c = train(small, TrainConfig(epochs=1, seed=4)).model
    assert weights_hash(a) == weights_hash(b)
    assert weights_hash(a) != weights_hash(c)


def test_training_learns(small_trained, mnist5k: Dataset) -> None:
    assert small_trained.test_accuracy > 0.9
    assert accuracy(small_trained.model, mnist5k.x_test, mnist5k.y_test) == small_trained.test_accuracy


@pytest.mark.parametrize("bad", [TrainConfig(train_dropout=1.0), TrainConfig(train_dropout=-0.1),
                                 TrainConfig(epochs=0), TrainConfig(learning_rate=0)])
def test_bad_train_config(bad: TrainConfig) -> None:
    with pytest.raises(DefdropError):
        bad.validate()


def test_checkpoint_roundtrip_weights_only(tmp_path: Path, small_trained) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, small_trained.model, {"dataset": "mnist-5k", "test_accuracy": 0.5})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "defdrop-checkpoint" and raw["config"]["train_dropout"] == 0.3
    model, meta = load_checkpoint(path)
    assert meta["dataset"] == "mnist-5k" and not model.training
    assert weights_hash(model) == weights_hash(small_trained.model)
    x = torch.rand(2, 1, 28, 28)
    # loaded for inference in channels-last memory: the same logits up to float round-off
    torch.testing.assert_close(model(x), small_trained.model(x), rtol=1e-5, atol=1e-5)


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(DefdropError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(DefdropError, match="not a defdrop checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(DefdropError, match="no 'defdrop-checkpoint' header"):
        load_checkpoint(other)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "defdrop-checkpoint", "obj": Path("x")}, evil)
    with pytest.raises(DefdropError, match="weights_only"):
        load_checkpoint(evil)
