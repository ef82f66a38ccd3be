"""Model factories as a user writes them (``--model-factory tests.payoffs.user_models:resnet``); a module, so that
spawned worker processes import it too."""
from __future__ import annotations

import torch
from torch import nn

from payoffs.models import PaperCNN


class Block(nn.Module):
    """A residual block: x + BN(conv(x)), then ReLU."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn(self.conv(x)))


class SmallResNet(nn.Module):
    """A second architecture: strided stem with BatchNorm, two residual blocks, two fully connected layers."""

    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, stride=2, padding=1)
        self.bn0 = nn.BatchNorm2d(width)
        self.block1 = Block(width)
        self.block2 = Block(width)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc1 = nn.Linear(16 * width, 48)
        self.fc2 = nn.Linear(48, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn0(self.stem(x)))
        h = self.block2(self.block1(h))
        h = torch.relu(self.fc1(torch.flatten(self.pool(h), 1)))
        return self.fc2(h)


class PlainNet(SmallResNet):
    """The same layers as :class:`SmallResNet` (same state dict), another forward: no block2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block1(torch.relu(self.bn0(self.stem(x))))
        return self.fc2(torch.relu(self.fc1(torch.flatten(self.pool(h), 1))))


def resnet() -> nn.Module:
    return SmallResNet()


def plain() -> nn.Module:
    return PlainNet()


def paper_cnn() -> nn.Module:
    """The paper's MNIST CNN as the session's small checkpoint holds it (r = 0.3)."""
    return PaperCNN("mnist", train_dropout=0.3)


def not_a_module() -> dict:
    return {"conv": nn.Conv2d(1, 1, 3)}


def raises() -> nn.Module:
    raise RuntimeError("the factory needs a GPU")


class TupleOut(nn.Module):
    """Returns (logits, features): not what defdrop evaluates."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.flatten(x, 1)
        return self.fc(h), h


def tuple_out() -> nn.Module:
    return TupleOut()


def five_classes() -> nn.Module:
    return SmallResNet(classes=5)


not_callable = 3


class SharedRelu(nn.Module):
    """One ``nn.ReLU`` used twice, and a layer the forward never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 32)
        self.fc2 = nn.Linear(32, 10)
        self.act = nn.ReLU()
        self.unused = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.act(torch.flatten(x, 1)))))


def shared_relu() -> nn.Module:
    return SharedRelu()
