"""Attack objectives on logits Z(x), shared by the attacks and the gradient analysis."""
from __future__ import annotations

import torch


def cw_margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``max_{i != t} Z_i - Z_t`` per example (negative once the target wins); the target is masked out of the max."""
    target_logit = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    others = logits.masked_fill(torch.nn.functional.one_hot(target, logits.shape[-1]).bool(), float("-inf"))
    return others.amax(-1) - target_logit


def cw_f(logits: torch.Tensor, target: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """Carlini & Wagner's f6 (paper eq. 5): ``max(max_{i != t} Z_i - Z_t, -kappa)``."""
    return cw_margin(logits, target).clamp_min(-kappa)
