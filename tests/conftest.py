"""Session-wide fixtures: the one small trained model the suite shares."""
from __future__ import annotations

import pytest
import torch

from payoffs.data import Dataset, load_dataset
from payoffs.training import TrainConfig, TrainResult, train


@pytest.fixture(scope="session")
def mnist5k() -> Dataset:
    return load_dataset("mnist-5k")


@pytest.fixture(scope="session")
def small_trained(mnist5k: Dataset) -> TrainResult:
    """The paper's MNIST CNN, r = 0.3, 3 epochs on mnist-5k (~95% test accuracy, a few seconds)."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return train(mnist5k, TrainConfig(train_dropout=0.3, epochs=3, seed=0))
