"""k defender samples of a model's logits for the price of the layers they touch, and what they cost.

:func:`sample_logits` is the one place every sampler goes through (EOT gradients and success tests of the attacks,
the M evaluation samples of a payoff cell, clean-accuracy cells, gradient-variance sampling). On a
:class:`payoffs.slots.DefendedModel` with a split, the trunk (the layers before the defense slot) runs once per
input and the head (the defense and the layers after it) on k copies of the trunk's values; on any other model,
or when the split does not hold, the input is repeated k times (the same k independent samples, at k times the
cost). A deterministic defense (``none``, r' = 0) gives k identical samples: it is evaluated once and expanded.

The k copies of an input carry independent randomness: with ``keys`` (one per input, from
:func:`payoffs.noise.row_keys`) copy c of input b draws from ``copies(keys, k)[c * B + b]``; without keys the
global RNG draws.

Costs are counted in example units inside :func:`counting`: ``forwards`` = logit vectors computed (k per input),
``backwards`` = of those, the ones computed with a gradient attached, ``trunk_forwards`` = inputs that went through
the trunk (B per call with a split, k * B without one).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Iterator

import torch
from torch import nn

from payoffs import noise
from payoffs.defenses import is_deterministic
from payoffs.slots import DefendedModel


@dataclass
class Cost:
    """Work done by the samplers, in examples (one example through the network = 1)."""

    forwards: int = 0
    backwards: int = 0
    trunk_forwards: int = 0

    def add(self, other: "Cost") -> None:
        self.forwards += other.forwards
        self.backwards += other.backwards
        self.trunk_forwards += other.trunk_forwards

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


_COSTS: ContextVar[tuple[Cost, ...]] = ContextVar("defdrop_costs", default=())


@contextmanager
def counting() -> Iterator[Cost]:
    """Count the samplers' work inside the block (nested blocks each count everything inside them)."""
    cost = Cost()
    token = _COSTS.set(_COSTS.get() + (cost,))
    try:
        yield cost
    finally:
        _COSTS.reset(token)


def _charge(forwards: int, backwards: int, trunk: int) -> None:
    for cost in _COSTS.get():
        cost.forwards += forwards
        cost.backwards += backwards
        cost.trunk_forwards += trunk


def _repeat(t: torch.Tensor, k: int) -> torch.Tensor:
    return t if k == 1 else t.repeat(k, *([1] * (t.dim() - 1)))


def is_random(model: nn.Module) -> bool:
    """False when the model's defense draws no randomness (then one sample stands for any number of them)."""
    return not (isinstance(model, DefendedModel) and is_deterministic(model.defense))


def sample_logits(model: nn.Module, x: torch.Tensor, k: int = 1, keys: torch.Tensor | None = None,
                  *, split: bool = True, groups: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of k independent defender samples at each input: shape ``(k, B, C)``, sample-major.

    ``split=False`` forces the repeat path (for tests of exactness and for benchmarks). ``groups``: the run of
    each input in a fused batch (see :func:`payoffs.noise.row_groups`), handed to the defense with the keys.
    """
    b = len(x)
    grad = torch.is_grad_enabled() and x.requires_grad
    if not is_random(model):
        logits = model(x)
        _charge(k * b, k * b if grad else 0, b)
        return logits.unsqueeze(0).expand(k, *logits.shape)
    boundary = model.trunk(x) if split and isinstance(model, DefendedModel) else None
    rows = None if keys is None else noise.copies(keys.to(x.device), k)
    row_groups = None if groups is None or rows is None else _repeat(groups.to(x.device), k)
    with noise.keyed(rows, row_groups):
        if boundary is not None:
            logits = model.head(tuple(_repeat(t, k) for t in boundary))
            _charge(k * b, k * b if grad else 0, b)
        else:
            logits = model(_repeat(x, k))
            _charge(k * b, k * b if grad else 0, k * b)
    return logits.view(k, b, -1)


def sample_input_gradients(model: nn.Module, x: torch.Tensor, k: int, keys: torch.Tensor | None,
                           objective) -> torch.Tensor:
    """Each defender sample's own input gradient ``d objective(logits_s, s) / dx``: shape ``(k, B, *x.shape[1:])``.

    ``objective(logits (k * B, C))`` returns one value per row. Unlike :func:`sample_logits`, the k gradients of an
    input must each go back through the layers before the slot, so the input is repeated k times (the samples are
    keyed as in :func:`sample_logits`, copy c of input b from ``copies(keys, k)[c * B + b]``); bench/sampling.py
    compares this with a vectorized backward over a shared forward.
    """
    b = len(x)
    xr = _repeat(x.detach(), k).requires_grad_(True)
    rows = None if keys is None else noise.copies(keys.to(x.device), k)
    with torch.enable_grad(), noise.keyed(rows if is_random(model) else None):
        values = objective(model(xr))
        (grad,) = torch.autograd.grad(values.sum(), [xr])
    _charge(k * b, k * b, k * b)
    return grad.view(k, b, *x.shape[1:])
