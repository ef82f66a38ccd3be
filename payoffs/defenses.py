"""Randomized test-time defenses, each an ``nn.Module`` that sits in a model's defense slot.

Both are active in train *and* eval mode: a deployed defense does not switch off with ``model.eval()``.
Every forward call draws fresh randomness, independently per example.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from payoffs.errors import DefdropError


class TestTimeDropout(nn.Module):
    """Defensive dropout (paper section 3.2): drop each unit with rate r', scale kept units by 1/(1-r').

    ``y = m * h / (1 - r')``, ``m_j ~ Bernoulli(1 - r')`` drawn independently per example and per call.
    ``rate = 0`` is the identity.
    """

    __test__ = False  # not a pytest class, despite its name

    def __init__(self, rate: float) -> None:
        super().__init__()
        rate = float(rate)
        if not 0.0 <= rate < 1.0 or math.isnan(rate):
            raise DefdropError(f"test dropout rate {rate} must be in [0, 1)")
        self.rate = rate

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0:
            return h
        keep = torch.rand_like(h) >= self.rate
        return h * keep / (1.0 - self.rate)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class SAP(nn.Module):
    """Stochastic Activation Pruning (Dhillon et al. 2018, arXiv:1803.01442; paper section 2.3.3).

    Per example, ``p_j = |h_j| / sum_k |h_k|``; draw ``r_p`` unit indices with replacement from p; units
    never drawn are set to 0 and kept units are scaled by ``1 / q_j`` with ``q_j = 1 - (1 - p_j)^r_p``,
    so ``E[SAP(h)] = h``. ``draws`` fixes ``r_p``; otherwise ``r_p = ceil(fraction * units)``
    (Dhillon et al.'s default is as many draws as units, ``fraction = 1``).
    """

    def __init__(self, draws: int | None = None, fraction: float = 1.0) -> None:
        super().__init__()
        if draws is not None and (int(draws) != draws or draws < 1):
            raise DefdropError(f"SAP draws {draws} must be a positive integer")
        if draws is None and not (fraction > 0 and math.isfinite(fraction)):
            raise DefdropError(f"SAP fraction {fraction} must be a positive number")
        self.draws = None if draws is None else int(draws)
        self.fraction = float(fraction)

    def num_draws(self, units: int) -> int:
        return self.draws if self.draws is not None else max(1, math.ceil(self.fraction * units))

    def keep_probabilities(self, h: torch.Tensor) -> torch.Tensor:
        """``q_j = 1 - (1 - p_j)^r_p`` per example (rows of the flattened activation)."""
        flat = h.reshape(h.shape[0], -1).abs()
        p = flat / flat.sum(dim=1, keepdim=True).clamp_min(torch.finfo(h.dtype).tiny)
        return (1.0 - (1.0 - p).pow(self.num_draws(flat.shape[1]))).reshape(h.shape)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        flat = h.reshape(h.shape[0], -1)
        mag = flat.detach().abs()
        total = mag.sum(dim=1, keepdim=True)
        alive = total.squeeze(1) > 0
        r_p = self.num_draws(flat.shape[1])
        keep = torch.zeros_like(flat, dtype=torch.bool)
        if alive.any():
            p = mag[alive] / total[alive]
            idx = torch.multinomial(p, r_p, replacement=True)
            rows = keep[alive]
            rows.scatter_(1, idx, True)
            keep[alive] = rows
        q = self.keep_probabilities(h.detach()).reshape_as(flat)
        scale = torch.where(keep, 1.0 / q.clamp_min(torch.finfo(h.dtype).tiny), torch.zeros_like(q))
        return (flat * scale).reshape(h.shape)

    def extra_repr(self) -> str:
        return f"draws={self.draws}" if self.draws is not None else f"fraction={self.fraction}"


def make_defense(kind: str, rate: float = 0.0, draws: int | None = None, fraction: float = 1.0) -> nn.Module:
    """Build a defender's module by name: ``none``, ``dropout`` (rate r') or ``sap`` (draws / fraction)."""
    if kind == "none":
        return nn.Identity()
    if kind == "dropout":
        return TestTimeDropout(rate)
    if kind == "sap":
        return SAP(draws=draws, fraction=fraction)
    raise DefdropError(f"unknown defense {kind!r}; choose none, dropout or sap")
