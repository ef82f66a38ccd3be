"""A toy attack and a toy defense, registered by the tests through the registry alone (no other file changes)."""
from __future__ import annotations

import torch
from torch import nn

from payoffs import noise
from payoffs.attacks.base import Attack


class ToyNudge(Attack):
    """Moves every pixel by ``step`` against the sign of the targeted cross-entropy's gradient, ``rounds`` times."""

    name = "toy_nudge"
    step: float
    rounds: int

    def run(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, ids: torch.Tensor):
        from payoffs.attacks.fgsm import targeted_ce

        x_adv = x.clone()
        for r in range(self.rounds):
            grad = self.loss_gradient(model, x_adv, target, ids, r, targeted_ce)
            x_adv = (x_adv - self.step * grad.sign()).clamp(0.0, 1.0)
        return x_adv, self.judge_at(model, x_adv, target, ids, self.rounds), torch.full(
            (len(x),), self.rounds, dtype=torch.int64, device=x.device)


class ToyNoise(nn.Module):
    """Adds uniform noise of width ``width`` to every unit (keyed like every defense)."""

    def __init__(self, width: float = 0.1) -> None:
        super().__init__()
        self.width = width

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.width * (noise.uniform(h.shape, h.device, h.dtype) - 0.5)
