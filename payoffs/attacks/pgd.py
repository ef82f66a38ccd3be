"""Projected Gradient Descent, Linf, targeted (Madry et al. 2018, arXiv:1706.06083); beyond the paper."""
from __future__ import annotations

import torch
from torch import nn

from payoffs.attacks.base import Attack, _check_bool, _check_float, _check_int
from payoffs.attacks.fgsm import targeted_ce


class PGD(Attack):
    """Targeted Linf PGD: ``x_{n+1} = Proj_{||x' - x||_inf <= eps, [0,1]}(x_n - a * sign(grad L(x_n, t)))``.

    L is the cross-entropy towards the target t (averaged over ``eot`` samples of a randomized model); the
    start is x, or uniform in the eps-ball when ``random_start``. Defaults are Madry et al.'s MNIST adversary:
    ``eps = 0.3``, ``step_size = 0.01``, ``steps = 40``, ``random_start = True``. The attack returns the last
    iterate (as Madry et al.); ``success`` is the attacker's test on one fresh forward pass there.
    """

    name = "pgd"

    def __init__(self, eps: float = 0.3, step_size: float = 0.01, steps: int = 40, random_start: bool = True, *,
                 eot: int = 1, success_test: str = "single", seed: int | None = None,
                 batch_size: int | None = None) -> None:
        super().__init__(eot=eot, success_test=success_test, seed=seed, batch_size=batch_size)
        self.eps = _check_float("pgd eps", eps, 0.0, 1.0, low_open=True)
        self.step_size = _check_float("pgd step_size", step_size, 0.0, 1.0, low_open=True)
        self.steps = _check_int("pgd steps", steps, 1)
        self.random_start = _check_bool("pgd random_start", random_start)

    def params(self) -> dict:
        return {"eps": self.eps, "step_size": self.step_size, "steps": self.steps, "random_start": self.random_start}

    def _run(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor):
        lo, hi = (x - self.eps).clamp_min(0.0), (x + self.eps).clamp_max(1.0)
        x_adv = x.clone()
        if self.random_start:
            x_adv = torch.max(torch.min(x + torch.empty_like(x).uniform_(-self.eps, self.eps), hi), lo)
        for _ in range(self.steps):
            grad = self.loss_gradient(model, x_adv, target, targeted_ce)
            x_adv = torch.max(torch.min(x_adv - self.step_size * grad.sign(), hi), lo)
        success = self.judge_at(model, x_adv, target)
        return x_adv, success, torch.full((len(x),), self.steps, dtype=torch.int64, device=x.device)
