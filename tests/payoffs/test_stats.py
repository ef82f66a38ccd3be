"""Intervals that hold: coverage with correlated attacks on one image, exact intervals at 0% and 100%."""
from __future__ import annotations

import numpy as np
import pytest

from payoffs.stats import bootstrap_rate, clopper_pearson, cluster_bootstrap_rate

TRUE_RATE = 0.3


def _clustered_draw(rng: np.random.Generator, images: int = 100, attacks: int = 9, samples: int = 20):
    """Each image has its own success rate (Beta with mean 0.3, intra-image correlation about 0.3): its 9 attacks
    share it. Returns (per-attack success fractions, image labels)."""
    p = rng.beta(0.7, 0.7 * (1 - TRUE_RATE) / TRUE_RATE, size=images)
    s = rng.binomial(samples, np.repeat(p, attacks)) / samples
    return s, np.repeat(np.arange(images), attacks)


def test_image_clustered_interval_covers_and_the_attack_level_one_does_not() -> None:
    rng = np.random.default_rng(0)
    draws = 500
    clustered = independent = 0
    for i in range(draws):
        s, image = _clustered_draw(rng)
        est = cluster_bootstrap_rate(s, image, 20, resamples=1000, seed=i)
        clustered += est.low <= TRUE_RATE <= est.high
        naive = bootstrap_rate(s, 20, resamples=1000, seed=i)  # attacks resampled as if independent
        independent += naive.low <= TRUE_RATE <= naive.high
    assert clustered / draws >= 0.90
    assert independent / draws < 0.80  # what the tables reported before resampling images


def test_boundaries_get_exact_intervals_over_images() -> None:
    image = np.repeat(np.arange(100), 9)
    top = cluster_bootstrap_rate(np.ones(900), image, 20)
    assert top.mean == 1.0 and top.high == 1.0 and top.low == pytest.approx(0.025 ** (1 / 100))
    assert 0.96 < top.low < 0.97 and top.std_error > 0 and "Clopper-Pearson" in top.method
    bottom = cluster_bootstrap_rate(np.zeros(900), image, 20)
    assert bottom.low == 0.0 and bottom.high == pytest.approx(1 - 0.025 ** (1 / 100))
    assert clopper_pearson(3, 10) == pytest.approx((0.0667, 0.6525), abs=1e-4)  # a textbook value


def test_interior_interval_contains_the_mean_and_shrinks_with_images() -> None:
    rng = np.random.default_rng(1)
    widths = []
    for images in (25, 100, 400):
        s, image = _clustered_draw(rng, images=images)
        est = cluster_bootstrap_rate(s, image, 20, seed=0)
        assert est.low <= est.mean <= est.high and est.n_clusters == images and est.n_units == 9 * images
        widths.append(est.high - est.low)
    assert widths[0] > widths[1] > widths[2]
