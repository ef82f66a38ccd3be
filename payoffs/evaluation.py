"""Clean accuracy of a defended model as deployed: M fresh defender samples per test image."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from payoffs.stats import RateEstimate, bootstrap_rate


@torch.no_grad()
def sampled_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int,
                    batch_size: int = 2000, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Fraction of ``samples`` forward passes that classify each image correctly, shape (N,).

    Each image is repeated ``samples`` times in the batch, so every pass draws its own defender sample.
    """
    device = next(model.parameters()).device
    per_chunk = max(1, batch_size // samples)
    out = np.empty(len(x))
    for i in range(0, len(x), per_chunk):
        xb = x[i:i + per_chunk].to(device)
        yb = y[i:i + per_chunk].to(device)
        logits = model(xb.repeat(samples, 1, 1, 1)).view(samples, len(xb), -1)
        out[i:i + len(xb)] = (logits.argmax(-1) == yb).float().mean(0).cpu().numpy()
        if progress is not None:
            progress(min(i + per_chunk, len(x)), len(x))
    return out


@torch.no_grad()
def first_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int, chunk: int = 1000) -> torch.Tensor:
    """Indices of the first ``n`` inputs (in order) that ``model`` classifies correctly; fewer if there are not n.

    Pass the undefended model: the attack protocol's inputs are the ones it gets right.
    """
    device = next(model.parameters()).device
    keep: list[int] = []
    for start in range(0, len(x), chunk):
        pred = model(x[start:start + chunk].to(device)).argmax(1).cpu()
        keep.extend((start + torch.nonzero(pred == y[start:start + chunk]).flatten()).tolist())
        if len(keep) >= n:
            break
    return torch.tensor(keep[:n], dtype=torch.long)


def defended_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int = 20, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> RateEstimate:
    """Clean accuracy averaged over ``samples`` defender draws, with a bootstrap interval over images."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        per_image = sampled_correct(model, x, y, samples, progress=progress)
    return bootstrap_rate(per_image, samples, seed=seed)
