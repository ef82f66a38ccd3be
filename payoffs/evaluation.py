"""A defended model as deployed: M fresh defender samples per input, for clean accuracy and for attack success.

Every input's M samples come from :func:`payoffs.sampling.sample_logits` (the layers before the defense slot run
once per input) and are keyed by (seed, purpose, input id, sample), so the fractions do not depend on how inputs
are batched.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from payoffs import noise
from payoffs.sampling import sample_logits
from payoffs.slots import undefended
from payoffs.stats import RateEstimate, bootstrap_rate

HEAD_ROWS = 32768
"""Defender samples (inputs x M) per pass: the layers after the slot are small, so many copies fit at once."""
TRUNK_IMAGES = 1024
"""Inputs per pass through the layers before the slot."""


def _device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def sampled_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int, *, seed: int | None = None,
                    ids: torch.Tensor | None = None, purpose: int = noise.EVAL,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Fraction of ``samples`` defender samples that classify each input as ``y`` (a label or a target): (N,).

    With ``seed``, input i's samples are keyed by (seed, purpose, ``ids[i]``) (``ids`` default ``0..N-1``);
    without, they come from the global RNG.
    """
    device = _device(model)
    ids = torch.arange(len(x)) if ids is None else torch.as_tensor(ids, dtype=torch.int64)
    per_pass = max(1, min(TRUNK_IMAGES, HEAD_ROWS // max(1, samples)))
    out = np.empty(len(x))
    for i in range(0, len(x), per_pass):
        xb = x[i:i + per_pass].to(device)
        yb = y[i:i + per_pass].to(device)
        keys = None if seed is None else noise.row_keys(seed, ids[i:i + per_pass].to(device), purpose)
        logits = sample_logits(model, xb, samples, keys)
        out[i:i + len(xb)] = (logits.argmax(-1) == yb).float().mean(0).cpu().numpy()
        if progress is not None:
            progress(min(i + per_pass, len(x)), len(x))
    return out


@torch.no_grad()
def first_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int, chunk: int = 1000) -> torch.Tensor:
    """Indices of the first ``n`` inputs (in order) that the *undefended* model classifies correctly (fewer if
    there are not n): the attack protocol's inputs. A defended model's defense is left out."""
    model = undefended(model)
    device = _device(model)
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
    per_image = sampled_correct(model, x, y, samples, seed=seed, purpose=noise.ACCURACY, progress=progress)
    return bootstrap_rate(per_image, samples, seed=seed)
