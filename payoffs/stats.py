"""Uncertainty of rates estimated from attacks x defender samples, resampled by the unit that is independent.

The 9 targeted attacks on one image share that image (an easy image is easy for every target), so attacks are
not independent draws; images are. A rate is therefore the mean over units (attacks, or test images) of each
unit's success fraction over its M defender samples, and its interval comes from resampling *clusters* (images)
with replacement, each carrying all its units (the cluster bootstrap; Davison & Hinkley 1997, section 3.8).

When every unit's fraction is exactly 0 (or exactly 1) a bootstrap has nothing to resample and would report a
zero-width interval. We then give the exact Clopper-Pearson interval with one trial per cluster (0 or G successes
out of G images): the data cannot rule out that the attacks on an image always agree, so the images are the only
independent evidence. With G = 100 images that is [0, 3.6%] (or [96.4%, 100%]) at 95%.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

LEVEL = 0.95
"""The confidence level of every interval defdrop reports."""
RESAMPLES = 2000
"""Bootstrap resamples per interval."""


@dataclass(frozen=True)
class RateEstimate:
    """A rate with its ``level`` interval: ``mean`` over units, ``low``/``high``, the standard error, and how
    many units (attacks or images), clusters (images) and defender samples per unit it rests on."""

    mean: float
    low: float
    high: float
    std_error: float
    n_units: int
    n_samples: int
    n_clusters: int = 0
    method: str = ""


def _nan_estimate(n_samples: int) -> RateEstimate:
    nan = float("nan")
    return RateEstimate(nan, nan, nan, nan, 0, n_samples, 0, "no units")


def clopper_pearson(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """Exact binomial interval for ``successes`` of ``trials``."""
    alpha = 1.0 - level
    low = 0.0 if successes == 0 else float(sps.beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(sps.beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def cluster_bootstrap_rate(per_unit: np.ndarray, clusters: np.ndarray | None, n_samples: int, *,
                           resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> RateEstimate:
    """Mean of ``per_unit`` (each unit's success fraction over its ``n_samples`` defender draws) with a
    percentile interval from resampling ``clusters`` (one label per unit; ``None``: every unit its own cluster).

    A resample draws G clusters with replacement and averages all units of the drawn clusters (the ratio estimator
    of a mean over units). At 0 or 1 exactly, the Clopper-Pearson interval over clusters (module docstring).
    """
    per_unit = np.asarray(per_unit, dtype=np.float64)
    n = per_unit.size
    if n == 0:
        return _nan_estimate(n_samples)
    labels = np.arange(n) if clusters is None else np.asarray(clusters)
    if labels.shape != per_unit.shape:
        raise ValueError(f"{labels.size} cluster labels for {n} units")
    _, index = np.unique(labels, return_inverse=True)
    sums = np.bincount(index, weights=per_unit)
    counts = np.bincount(index).astype(np.float64)
    g = sums.size
    mean = float(per_unit.mean())
    alpha = (1.0 - level) / 2.0
    if np.all(per_unit == per_unit[0]) and per_unit[0] in (0.0, 1.0):
        low, high = clopper_pearson(int(round(per_unit[0])) * g, g, level)
        return RateEstimate(mean, low, high, (high - low) / (2 * sps.norm.ppf(1 - alpha)), n, n_samples, g,
                            f"exact (Clopper-Pearson) over {g} images: every unit at {mean:g}")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):  # chunks bound memory for many clusters
        stop = min(resamples, start + 256)
        draw = rng.integers(0, g, size=(stop - start, g))
        means[start:stop] = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # Percentile bounds can miss the point estimate by float rounding only; keep the interval around it.
    return RateEstimate(mean, float(min(low, mean)), float(max(high, mean)), float(means.std(ddof=1)), n, n_samples,
                        g, f"percentile bootstrap over {g} images ({resamples} resamples)")


def bootstrap_rate(per_unit: np.ndarray, n_samples: int, *, resamples: int = RESAMPLES, seed: int = 0,
                   level: float = LEVEL) -> RateEstimate:
    """:func:`cluster_bootstrap_rate` with every unit its own cluster (units that are independent, e.g. images)."""
    return cluster_bootstrap_rate(per_unit, None, n_samples, resamples=resamples, seed=seed, level=level)
