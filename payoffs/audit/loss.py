"""The attack's loss path, recorded step by step (:func:`payoffs.attacks.base.tracing_losses`), as a curve and as
Pintor et al.'s incomplete-optimization indicator (2021, arXiv:2106.09947, section 3: the loss still falling when
the attack stops).
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch

from payoffs.audit.estimates import mean_estimate
from payoffs.audit.evidence import Estimate, LossCurve

WINDOWS = 10
"""The indicator compares the mean loss over windows of a tenth of each optimization run."""
FLAT_SCALE = 1e-9
"""An example whose loss fell by less than this (relative to its first window's) made no progress: flat."""


class LossTrace:
    """Records ``(step, ids, loss)`` from an attack: each example's loss at each step it took."""

    def __init__(self) -> None:
        self.parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)

    def __call__(self, step: int, ids: torch.Tensor, loss: torch.Tensor) -> None:
        self.parts[int(step)].append((ids.cpu().numpy().astype(np.int64), loss.float().cpu().numpy()))

    def matrix(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values (examples x steps, NaN where an example took no step)), examples in the order of ``ids``."""
        steps = np.array(sorted(self.parts), dtype=np.int64)
        order = np.asarray(ids, dtype=np.int64)
        sort = np.argsort(order)
        out = np.full((len(order), len(steps)), np.nan)
        for s, step in enumerate(steps):
            got = np.concatenate([i for i, _ in self.parts[int(step)]])
            val = np.concatenate([v for _, v in self.parts[int(step)]])
            pos = np.searchsorted(order[sort], got)
            ok = (pos < len(order)) & (order[sort][np.minimum(pos, len(order) - 1)] == got)
            out[sort[pos[ok]], s] = val[ok]
        return steps, out

    def curve(self, ids: list[int], segment: int | None) -> LossCurve | None:
        if not self.parts:
            return None
        steps, values = self.matrix(ids)
        active = np.isfinite(values).sum(0)
        with np.errstate(invalid="ignore"):
            mean = np.where(active > 0, np.nansum(values, 0) / np.maximum(active, 1), np.nan)
        return LossCurve(tuple(int(s) for s in steps), tuple(float(m) for m in mean), tuple(int(a) for a in active),
                         segment)


def example_shares(steps: np.ndarray, values: np.ndarray, segment: int, windows: int = WINDOWS) -> np.ndarray:
    """Per example, the mean over its optimization runs of ``(W_{-2} - W_{-1}) / (W_0 - W_{-1})``: the share of
    the run's loss decrease made in its second-to-last window (each window a ``windows``-th of the steps the
    example took in that run). About 0 when the loss is flat at the end, ``1 / (windows - 1)`` when it falls in a
    straight line. Runs shorter than 3 steps, and runs whose loss did not fall, count as flat (0)."""
    runs = steps // segment
    out = np.zeros(values.shape[0])
    for e in range(values.shape[0]):
        shares = []
        for r in np.unique(runs):
            path = values[e, runs == r]
            path = path[np.isfinite(path)]
            if path.size < 3:
                continue
            w = max(1, path.size // windows)
            first, before, last = path[:w].mean(), path[-2 * w:-w].mean(), path[-w:].mean()
            total = first - last
            if not math.isfinite(total) or total <= FLAT_SCALE * max(abs(first), 1e-30):
                shares.append(0.0)
            else:
                shares.append(float(np.clip((before - last) / total, -1.0, 1.0)))
        out[e] = float(np.mean(shares)) if shares else 0.0
    return out


def flatness(trace: LossTrace, ids: list[int], clusters: np.ndarray, segment: int, *, seed: int = 0,
             windows: int = WINDOWS) -> Estimate:
    """The mean of :func:`example_shares` over the attacks, with a percentile bootstrap interval over images."""
    steps, values = trace.matrix(ids)
    shares = example_shares(steps, values, segment, windows)
    return mean_estimate(shares, clusters, seed=seed)
