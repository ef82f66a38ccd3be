"""Training the paper's CNN with dropout rate r (standard inverted dropout), and measuring accuracy."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from payoffs.data import Dataset
from payoffs.errors import DefdropError
from payoffs.models import PaperCNN, architecture_for

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """Explicit training parameters (Adam, cross-entropy on logits)."""

    train_dropout: float = 0.3
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    dropout_layer: str = "fc1"

    def validate(self) -> None:
        if not 0.0 <= self.train_dropout < 1.0:
            raise DefdropError(f"training dropout rate {self.train_dropout} must be in [0, 1)")
        if self.epochs < 1:
            raise DefdropError(f"epochs {self.epochs} must be at least 1")
        if self.batch_size < 1:
            raise DefdropError(f"batch size {self.batch_size} must be at least 1")
        if not self.learning_rate > 0:
            raise DefdropError(f"learning rate {self.learning_rate} must be positive")


@dataclass(frozen=True)
class TrainResult:
    model: PaperCNN
    test_accuracy: float
    seconds_per_epoch: float
    epochs: int


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of one forward pass per example (a randomized defense is sampled once per example)."""
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == y[i:i + batch_size]).sum())
    return correct / max(1, len(x))


def train(data: Dataset, config: TrainConfig, device: torch.device | str = "cpu",
          progress: ProgressFn | None = None) -> TrainResult:
    """Train ``PaperCNN`` on ``data`` with seeded init and shuffling; same seed, same weights on CPU."""
    config.validate()
    torch.manual_seed(config.seed)
    model = PaperCNN(architecture_for(data.input_shape), config.train_dropout, config.dropout_layer,
                     data.num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    gen = torch.Generator().manual_seed(config.seed)
    n = len(data.x_train)
    steps_per_epoch = (n + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    start = time.perf_counter()
    step = 0
    for _ in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, config.batch_size):
            idx = order[i:i + config.batch_size]
            xb, yb = data.x_train[idx].to(device), data.y_train[idx].to(device)
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            step += 1
            if progress is not None:
                progress(step, total)
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(model, accuracy(model, data.x_test, data.y_test), seconds / config.epochs, config.epochs)
