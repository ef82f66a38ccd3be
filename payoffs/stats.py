"""Uncertainty of rates estimated from attacks x defender samples."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RateEstimate:
    """A mean of per-unit rates with a 95% percentile-bootstrap interval over units."""

    mean: float
    low: float
    high: float
    std_error: float
    n_units: int
    n_samples: int


def bootstrap_rate(per_unit: np.ndarray, n_samples: int, *, resamples: int = 2000, seed: int = 0,
                   level: float = 0.95) -> RateEstimate:
    """Mean of ``per_unit`` (each unit's success fraction over its ``n_samples`` defender draws).

    Resampling units (attacks, or images) with replacement carries both sources of variation: the spread
    between units and, inside each unit's fraction, the binomial noise of its M defender samples.
    """
    per_unit = np.asarray(per_unit, dtype=np.float64)
    n = per_unit.size
    if n == 0:
        return RateEstimate(float("nan"), float("nan"), float("nan"), float("nan"), 0, n_samples)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):  # chunks bound memory for large n
        stop = min(resamples, start + 256)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = per_unit[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    mean = float(per_unit.mean())
    # Percentile bounds can miss the point estimate by float rounding only; keep the interval around it.
    return RateEstimate(mean, float(min(low, mean)), float(max(high, mean)), float(means.std(ddof=1)), n, n_samples)
