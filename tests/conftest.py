"""Session-wide fixtures: the one small trained model the suite shares."""
from __future__ import annotations

from pathlib import Path

import pytest

from payoffs.data import Dataset, load_dataset
from payoffs.training import TrainConfig, TrainResult, train


@pytest.fixture(scope="session")
def mnist5k() -> Dataset:
    return load_dataset("mnist-5k")


@pytest.fixture(scope="session")
def small_trained(mnist5k: Dataset) -> TrainResult:
    """The paper's MNIST CNN, r = 0.3, 3 epochs on mnist-5k (~95% test accuracy, a few seconds)."""
    return train(mnist5k, TrainConfig(train_dropout=0.3, epochs=3, seed=0))


@pytest.fixture(scope="session")
def small_checkpoint(small_trained: TrainResult, tmp_path_factory) -> "Path":
    """The small model as a defdrop checkpoint file."""
    from payoffs.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("models") / "mnist5k-r0.3.pt"
    save_checkpoint(path, small_trained.model, {"dataset": "mnist-5k", "train_dropout": 0.3, "epochs": 3,
                                                "test_accuracy": small_trained.test_accuracy})
    return path


@pytest.fixture(scope="session")
def adversarial_small(mnist5k: Dataset) -> TrainResult:
    """PGD adversarial training (eps 0.3, random start) reduced to 2 steps of 0.2 and 2 epochs so it trains in
    seconds (about 3x a standard epoch); r = 0.3 as ``small_trained``."""
    return train(mnist5k, TrainConfig(train_dropout=0.3, epochs=2, seed=0, recipe="adversarial",
                                      recipe_params={"steps": 2, "step_size": 0.2}))


@pytest.fixture(scope="session")
def distilled_small(mnist5k: Dataset) -> TrainResult:
    """Defensive distillation at T = 100, teacher and student 2 epochs each, r = 0.3."""
    return train(mnist5k, TrainConfig(train_dropout=0.3, epochs=2, seed=0, recipe="distillation"))
