"""Intervals for the audit's numbers, images as the unit of resampling (the attacks on one image are a cluster).

* a rate (a share of defender samples per attack, averaged): :func:`payoffs.stats.cluster_bootstrap_rate`, exact
  Clopper-Pearson over images when every attack is at 0 or 1;
* a paired difference of two runs on the same attacks: a percentile bootstrap over images of the per-attack
  differences; when every draw is equal (e.g. both runs at 100% on every attack) the images cannot show the
  uncertainty and the two rates' own standard errors are combined as if independent (the rule of
  :func:`gameplay.images.contrast`); a run compared with itself (two checks that need the same computation, e.g.
  EOT's k = 1 and k = 2 against a defender that draws nothing) differs by exactly 0;
* a share of independent trials (probed rows): Clopper-Pearson.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from payoffs.audit.evidence import Estimate
from payoffs.stats import LEVEL, RESAMPLES, RateEstimate, clopper_pearson, cluster_bootstrap_rate

SAME_COMPUTATION = "exact: the two runs are one computation"


def from_rate(est: RateEstimate) -> Estimate:
    return Estimate(est.mean, est.low, est.high, est.std_error, est.n_units, est.n_clusters, est.method)


def rate(per_unit: np.ndarray, clusters: np.ndarray, n_samples: int, *, seed: int = 0) -> Estimate:
    """The mean of per-attack success shares with its image-clustered interval."""
    return from_rate(cluster_bootstrap_rate(np.asarray(per_unit, dtype=np.float64), np.asarray(clusters), n_samples,
                                            seed=seed))


def _draws(values: np.ndarray, clusters: np.ndarray, seed: int, resamples: int) -> tuple[np.ndarray, int]:
    _, index = np.unique(np.asarray(clusters), return_inverse=True)
    sums = np.bincount(index, weights=values)
    counts = np.bincount(index).astype(np.float64)
    g = sums.size
    draw = np.random.default_rng(seed).integers(0, g, size=(resamples, g))
    return sums[draw].sum(1) / counts[draw].sum(1), g


def mean_estimate(values: np.ndarray, clusters: np.ndarray, *, seed: int = 0, level: float = LEVEL,
                  resamples: int = RESAMPLES) -> Estimate:
    """The mean of per-unit values (any sign) with a percentile bootstrap over clusters (images)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return Estimate(math.nan, math.nan, math.nan, method="no units")
    means, g = _draws(values, clusters, seed, resamples)
    mean = float(values.mean())
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Estimate(mean, float(min(low, mean)), float(max(high, mean)), float(means.std(ddof=1)) if g > 1 else 0.0,
                    int(values.size), int(g), f"percentile bootstrap over {g} images ({resamples} resamples)")


def paired(a: np.ndarray, b: np.ndarray, clusters: np.ndarray, rate_a: Estimate, rate_b: Estimate, *,
           identical: bool = False, seed: int = 0, level: float = LEVEL, resamples: int = RESAMPLES) -> Estimate:
    """``mean(a) - mean(b)`` over the same attacks (see the module docstring for the interval)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired runs over {a.size} and {b.size} attacks")
    n, g = int(a.size), int(np.unique(np.asarray(clusters)).size)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, method="no units")
    d = a - b
    mean = float(d.mean())
    if identical:
        return Estimate(0.0, 0.0, 0.0, 0.0, n, g, SAME_COMPUTATION, identical=True)
    means, _ = _draws(d, clusters, seed, resamples)
    alpha = (1.0 - level) / 2.0
    if np.ptp(means) > 0:
        low, high = np.quantile(means, [alpha, 1.0 - alpha])
        return Estimate(mean, float(min(low, mean)), float(max(high, mean)), float(means.std(ddof=1)), n, g,
                        f"paired percentile bootstrap over {g} images ({resamples} resamples)")
    se = math.sqrt(rate_a.std_error ** 2 + rate_b.std_error ** 2)
    z = float(sps.norm.ppf(1.0 - alpha))
    return Estimate(mean, mean - z * se, mean + z * se, se, n, g,
                    "the two rates' standard errors combined as if independent (paired draws all equal)")


def binomial_share(successes: int, trials: int, *, level: float = LEVEL) -> Estimate:
    """``successes / trials`` with its exact (Clopper-Pearson) interval."""
    if trials <= 0:
        return Estimate(math.nan, math.nan, math.nan, method="no trials")
    low, high = clopper_pearson(int(successes), int(trials), level)
    p = successes / trials
    return Estimate(p, low, high, math.sqrt(p * (1.0 - p) / trials), int(trials), int(trials),
                    f"exact (Clopper-Pearson) over {trials} trials")
