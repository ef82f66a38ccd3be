"""Adversarial training (the ``adversarial`` recipe) and the untargeted Linf attacks it trains against.

Madry et al. 2018 (arXiv:1706.06083, eq. 2.1): ``min_theta E_(x,y) max_{||delta||_inf <= eps} L(theta, x + delta, y)``,
the inner maximum approximated by projected gradient ascent on the cross-entropy of the true label,
``x_{t+1} = Proj_{B_inf(x, eps) ∩ [0,1]^d}(x_t + a * sign(grad_x L(theta, x_t, y)))``, from a uniform random
start in the ball (MNIST: eps 0.3, a 0.01, 40 steps). FGSM training (Goodfellow et al. 2015, arXiv:1412.6572,
section 5) takes one step ``x + eps * sign(grad_x L)`` from the clean image and minimizes
``alpha * L(x, y) + (1 - alpha) * L(x_adv, y)`` with alpha = 0.5; PGD training uses alpha = 0 (adversarial loss
only), as Madry et al. do. ``clean_weight`` sets alpha for either method.

Dropout during the attack: the adversarial examples are computed with the model in eval mode (training dropout
off), so the inner maximization attacks the network as it is deployed and every gradient step sees the same
function; the weight update that follows runs in train mode (dropout r on), like every other recipe's. In train
mode each PGD step would attack a different random sub-network (the weaker, noisier inner maximum that test-time
dropout itself exploits). The mode is restored even if the attack raises.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from payoffs.training import FitContext


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block, its previous mode restored after it (also on errors)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d/dx of the summed cross-entropy (summed so that no example's gradient shrinks with the batch size; only
    its sign is used). Gradients are taken for the input only: the weights' ``.grad`` is left untouched."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Untargeted FGSM: ``clip_[0,1](x + eps * sign(grad_x CE(f(x), y)))``; ``model`` used in its current mode."""
    return (x + eps * _loss_gradient(model, x, y).sign()).clamp(0.0, 1.0).detach()


def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float, steps: int,
             random_start: bool = True) -> torch.Tensor:
    """Untargeted Linf PGD maximizing the cross-entropy of the true label ``y`` (Madry et al. 2018).

    Starts at ``x + U(-eps, eps)`` (clipped to [0, 1]) when ``random_start``, else at ``x``; ``steps`` signed
    gradient steps of ``step_size``, each projected onto the eps-ball around ``x`` and onto [0, 1]. ``model`` is
    used in its current mode; the random start draws from torch's global generator.
    """
    x = x.detach()
    low, high = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
    x_adv = x + torch.empty_like(x).uniform_(-eps, eps) if random_start else x.clone()
    x_adv = torch.max(torch.min(x_adv, high), low)
    for _ in range(steps):
        x_adv = x_adv + step_size * _loss_gradient(model, x_adv, y).sign()
        x_adv = torch.max(torch.min(x_adv, high), low)
    return x_adv.detach()


def adversarial_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: dict) -> torch.Tensor:
    """The recipe's training attack (``method``, ``eps``, ...) run with ``model`` in eval mode."""
    with evaluating(model):
        if params["method"] == "fgsm":
            return fgsm_linf(model, x, y, params["eps"])
        return pgd_linf(model, x, y, params["eps"], params["step_size"], params["steps"], params["random_start"])


def adversarial_loss(params: dict):
    """``alpha * CE(f(x), y) + (1 - alpha) * CE(f(x_adv), y)`` in train mode, alpha = ``clean_weight``."""
    alpha = float(params["clean_weight"])

    def loss(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        x_adv = adversarial_examples(model, xb, yb, params)
        if alpha == 0.0:
            return F.cross_entropy(model(x_adv), yb)
        logits = model(torch.cat([xb, x_adv]))  # one pass for both halves; dropout masks independent per row
        n = len(xb)
        return alpha * F.cross_entropy(logits[:n], yb) + (1.0 - alpha) * F.cross_entropy(logits[n:], yb)

    return loss


def fit_adversarial(ctx: FitContext) -> tuple[nn.Module, dict]:
    """The ``adversarial`` recipe (see the module docstring)."""
    model = ctx.new_model()
    ctx.run_epochs(model, ctx.y_train, adversarial_loss(ctx.params), ctx.config.epochs)
    return model, {}


@torch.no_grad()
def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 0.3, step_size: float = 0.01,
                    steps: int = 40, random_start: bool = True, batch_size: int = 500) -> float:
    """Share of ``(x, y)`` still classified ``y`` after untargeted PGD-Linf (one forward pass each, ``model`` in
    its current mode; for a deterministic model this is Madry et al.'s robust accuracy)."""
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        x_adv = pgd_linf(model, xb, yb, eps, step_size, steps, random_start)
        correct += int((model(x_adv).argmax(1) == yb).sum())
    return correct / max(1, len(x))
