"""Models, defenses and an attack with known flaws for the audit tests (helpers, not tests)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from payoffs import noise
from payoffs.attacks.base import Attack
from payoffs.attacks.fgsm import targeted_ce
from payoffs.data import Dataset
from payoffs.sources import ModelDescription


class TinyNet(nn.Module):
    """A user's model, not the paper's: a strided conv stem and a hidden layer whose activation ``act`` is the slot."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 4, stride=4)
        self.hidden = nn.Linear(392, 64)
        self.act = nn.ReLU()
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.hidden(torch.relu(self.stem(x)).flatten(1))))


def train_tiny(data: Dataset, epochs: int = 3, seed: int = 0) -> TinyNet:
    """About 91% on mnist-5k in a few seconds."""
    torch.manual_seed(seed)
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(data.x_train))
        for i in range(0, len(perm), 64):
            b = perm[i:i + 64]
            loss = F.cross_entropy(net(data.x_train[b]), data.y_train[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@dataclass(frozen=True, eq=False)
class ToySource:
    """A model source for an in-memory model (the :class:`payoffs.sources.ModelSource` protocol)."""

    model: nn.Module
    identity: str = "tiny-user-model"
    description: ModelDescription = ModelDescription("tiny", "mnist-5k")
    default_slot: str | None = None

    def load(self, device: torch.device | str = "cpu") -> nn.Module:
        return self.model.to(device)


class _ZeroBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:
        return h.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(grad)


class MaskedGradient(nn.Module):
    """Identity forward, zero backward: a defense that masks gradients and nothing else."""

    deterministic = True

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return _ZeroBackward.apply(h)


class Quantize(nn.Module):
    """Rounds activations to quarters: non-differentiable (zero gradient almost everywhere)."""

    deterministic = True

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.round(h * 4.0) / 4.0


class FixedSeedDropout(nn.Module):
    """Dropout that seeds its own generator at every call: one mask forever, though it claims to be random."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        g = torch.Generator(device=h.device).manual_seed(0)
        return h * (torch.rand(h.shape, generator=g, device=h.device) >= 0.5) * 2.0


class GradOffDropout(nn.Module):
    """Dropout that switches itself off whenever gradients are taken: random when evaluated, not when attacked."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return h
        return h * (noise.uniform(h.shape, h.device, h.dtype) >= 0.5) * 2.0


class ModeSwitchingPGD(Attack):
    """A few PGD-like steps after ``model.train()``, as some libraries switch modes (and never switch back)."""

    name = "mode_switch"
    steps: int

    def run(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, ids: torch.Tensor):
        model.train()
        x_adv = x.clone()
        for step in range(self.steps):
            grad = self.loss_gradient(model, x_adv, target, ids, step, targeted_ce)
            x_adv = (x_adv - 0.05 * grad.sign()).clamp(0.0, 1.0)
        return x_adv, self.judge_at(model, x_adv, target, ids, self.steps), torch.full(
            (len(x),), self.steps, dtype=torch.int64, device=x.device)
