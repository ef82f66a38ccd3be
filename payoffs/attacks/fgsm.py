"""Fast Gradient Sign Method, targeted (Goodfellow et al. 2015, arXiv:1412.6572; paper section 2.2.1)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from payoffs.attacks.base import Attack


def targeted_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over examples of the cross-entropy towards ``target``, averaged over the k EOT samples of ``(k, B, C)``."""
    k = logits.shape[0]
    return F.cross_entropy(logits.flatten(0, 1), target.repeat(k), reduction="sum") / k


class FGSM(Attack):
    """Targeted FGSM: ``x' = clip_[0,1](x - eps * sign(grad_x L(x, t)))``, L the cross-entropy towards t.

    One gradient step of Linf size ``eps`` (default 0.25, the paper's setting after Goodfellow et al.; declared in
    :data:`payoffs.registry.ATTACKS`). Against a randomized model the gradient is that of one sampled
    sub-network, or the mean over ``eot`` samples. ``success`` is the attacker's test (``single`` /
    ``expected``) on fresh samples at x'.

    >>> FGSM(eps=0.25)(model, x, target).success.float().mean()  # doctest: +SKIP
    """

    name = "fgsm"
    eps: float

    def run(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, ids: torch.Tensor):
        grad = self.loss_gradient(model, x, target, ids, 0, targeted_ce)
        x_adv = (x - self.eps * grad.sign()).clamp(0.0, 1.0)
        success = self.judge_at(model, x_adv, target, ids, 1)
        return x_adv, success, torch.ones(len(x), dtype=torch.int64, device=x.device)
