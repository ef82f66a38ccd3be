"""Projected Gradient Descent, Linf, targeted (Madry et al. 2018, arXiv:1706.06083); beyond the paper."""
from __future__ import annotations

import torch
from torch import nn

from payoffs.attacks.base import Attack
from payoffs.attacks.fgsm import targeted_ce


class PGD(Attack):
    """Targeted Linf PGD: ``x_{n+1} = Proj_{||x' - x||_inf <= eps, [0,1]}(x_n - a * sign(grad L(x_n, t)))``.

    L is the cross-entropy towards the target t (averaged over ``eot`` samples of a randomized model); the
    start is x, or uniform in the eps-ball when ``random_start``. Defaults are Madry et al.'s MNIST adversary:
    ``eps = 0.3``, ``step_size = 0.01``, ``steps = 40``, ``random_start = True``. The attack returns the last
    iterate (as Madry et al.); ``success`` is the attacker's test on one fresh forward pass there.
    """

    name = "pgd"
    eps: float
    step_size: float
    steps: int
    random_start: bool

    def run(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, ids: torch.Tensor):
        lo, hi = (x - self.eps).clamp_min(0.0), (x + self.eps).clamp_max(1.0)
        x_adv = x.clone()
        if self.random_start:
            start = (2.0 * self.uniform(x, ids) - 1.0) * self.eps
            x_adv = torch.max(torch.min(x + start, hi), lo)
        for step in range(self.steps):
            grad = self.loss_gradient(model, x_adv, target, ids, step, targeted_ce)
            x_adv = torch.max(torch.min(x_adv - self.step_size * grad.sign(), hi), lo)
        success = self.judge_at(model, x_adv, target, ids, self.steps)
        return x_adv, success, torch.full((len(x),), self.steps, dtype=torch.int64, device=x.device)
