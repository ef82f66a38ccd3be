"""Small models and (image, target) pairs shared by the attack tests (helpers, not tests)."""
from __future__ import annotations

import torch
from torch import nn

from payoffs.defenses import TestTimeDropout
from payoffs.models import PaperCNN, with_defense


def linear_model(weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Module:
    """``Z(x) = W flatten(x) + b``: a deterministic model whose gradients are known by hand."""
    classes, features = weight.shape
    model = nn.Sequential(nn.Flatten(), nn.Linear(features, classes))
    with torch.no_grad():
        model[1].weight.copy_(weight)
        model[1].bias.copy_(torch.zeros(classes) if bias is None else bias)
    return model.eval()


def dropout_mlp(rate: float = 0.5, seed: int = 0) -> nn.Module:
    """A random MNIST-shaped MLP with test-time dropout after its hidden layer (scaled up so that its input
    gradients are large, unlike an untrained CNN's, and attacks succeed within a few steps)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), TestTimeDropout(rate), nn.Linear(64, 10))
    with torch.no_grad():
        for layer in (model[1], model[4]):
            layer.weight.mul_(4.0)
    return model.eval()


def dropout_cnn(rate: float = 0.5, seed: int = 0) -> nn.Module:
    """An untrained MNIST PaperCNN (seeded weights) with test-time dropout in its defense slot."""
    torch.manual_seed(seed)
    return with_defense(PaperCNN("mnist").eval(), TestTimeDropout(rate))


def all_target_pairs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_images: int,
                     classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's protocol: the first ``n_images`` correctly classified images, each towards the 9 other classes."""
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).nonzero().flatten()[:n_images]
    images = x[correct].repeat_interleave(classes - 1, dim=0)
    labels = y[correct].repeat_interleave(classes - 1)
    offsets = torch.arange(1, classes).repeat(len(correct))
    return images, (labels + offsets) % classes
