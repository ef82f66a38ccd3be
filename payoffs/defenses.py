"""Randomized test-time defenses, each an ``nn.Module`` that sits in a model's defense slot.

Both are active in train *and* eval mode: a deployed defense does not switch off with ``model.eval()``.
Every forward call draws fresh randomness, independently per example, through :func:`payoffs.noise.uniform`: keyed
per example when a sampler sets keys (so results do not depend on batching), the global RNG otherwise.
Their parameters are declared in :mod:`payoffs.registry` (``DEFENSES``); ``deterministic`` says whether a module
draws no randomness at all (then k samples of it are one).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from payoffs import noise
from payoffs.registry import DEFENSES


def _declared(name: str, **params) -> dict:
    """The constructor's arguments checked against the defense's declaration in :mod:`payoffs.registry`."""
    return DEFENSES[name].resolve(params)


class TestTimeDropout(nn.Module):
    """Defensive dropout (paper section 3.2): drop each unit with rate r', scale kept units by 1/(1-r').

    ``y = m * h / (1 - r')``, ``m_j ~ Bernoulli(1 - r')`` drawn independently per example and per call.
    ``rate = 0`` is the identity.
    """

    __test__ = False  # not a pytest class, despite its name

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = _declared("dropout", rate=rate)["rate"]

    @property
    def deterministic(self) -> bool:
        return self.rate == 0.0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0:
            return h
        keep = noise.uniform(h.shape, h.device, h.dtype) >= self.rate
        return h * keep / (1.0 - self.rate)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class SAP(nn.Module):
    """Stochastic Activation Pruning (Dhillon et al. 2018, arXiv:1803.01442; paper section 2.3.3).

    Per example, ``p_j = |h_j| / sum_k |h_k|``; draw ``r_p`` unit indices with replacement from p; units
    never drawn are set to 0 and kept units are scaled by ``1 / q_j`` with ``q_j = 1 - (1 - p_j)^r_p``,
    so ``E[SAP(h)] = h``. ``draws`` fixes ``r_p``; otherwise ``r_p = ceil(fraction * units)``
    (Dhillon et al.'s default is as many draws as units, ``fraction = 1``). The draws are by inverse CDF:
    ``r_p`` uniforms per example located in the cumulative sum of p.
    """

    deterministic = False

    def __init__(self, draws: int | None = None, fraction: float = 1.0) -> None:
        super().__init__()
        params = _declared("sap", draws=draws, fraction=fraction)
        self.draws, self.fraction = params["draws"], params["fraction"]

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
        cdf = mag.to(torch.float64).cumsum(dim=1)
        u = noise.uniform((flat.shape[0], r_p), h.device, torch.float64) * cdf[:, -1:]
        idx = torch.searchsorted(cdf, u, right=True).clamp_max_(flat.shape[1] - 1)
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep.scatter_(1, idx, True)
        keep &= alive[:, None]
        q = self.keep_probabilities(h.detach()).reshape_as(flat)
        scale = torch.where(keep, 1.0 / q.clamp_min(torch.finfo(h.dtype).tiny), torch.zeros_like(q))
        return (flat * scale).reshape(h.shape)

    def extra_repr(self) -> str:
        return f"draws={self.draws}" if self.draws is not None else f"fraction={self.fraction}"


def make_defense(kind: str, **params) -> nn.Module:
    """A defender's module by its registered name (``none``, ``dropout``, ``sap``, ...) and declared parameters."""
    entry = DEFENSES[kind]
    return entry.load()(**entry.resolve(params))


def is_deterministic(module: nn.Module) -> bool:
    """True when the module draws no randomness (``nn.Identity``, dropout at rate 0, ``deterministic = True``)."""
    return isinstance(module, nn.Identity) or bool(getattr(module, "deterministic", False))
