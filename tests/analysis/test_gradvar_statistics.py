"""Gradient statistics against numpy/scipy on hand-made gradient sets, dimension choice, bootstrap intervals."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats as sps

from analysis.gradvar import STATISTICS, bootstrap_mean, choose_dims, gradient_statistics
from payoffs.errors import DefdropError
from tests.analysis.conftest import hand_gradients


def reference(g: np.ndarray, dims: list[int]) -> dict[str, float]:
    """The documented formulas, written out dimension by dimension and sample by sample (leave-one-out: each
    sample against the mean of the others)."""
    sub = g[:, dims]
    s = len(sub)
    var, ratio, kurt, pure = [], [], [], False
    for j in range(sub.shape[1]):
        col = sub[:, j]
        m = sum(col) / s
        v = sum((c - m) ** 2 for c in col) / (s - 1)
        var.append(v)
        loo = sum(col[a] * sum(col[b] for b in range(s) if b != a) / (s - 1) for a in range(s)) / s
        if v > 0:
            ratio.append(loo / v)
            m2 = sum((c - m) ** 2 for c in col) / s
            m4 = sum((c - m) ** 4 for c in col) / s
            kurt.append(m4 / m2 ** 2 - 3)
        elif m != 0:
            pure = True
    q = float(np.mean(ratio))
    snr = math.inf if pure else math.copysign(math.sqrt(abs(q)), q)
    cos = []
    for a in range(s):
        others = np.mean([sub[b] for b in range(s) if b != a], axis=0)
        if np.linalg.norm(sub[a]) > 0 and np.linalg.norm(others) > 0:
            cos.append(float(sub[a] @ others / (np.linalg.norm(sub[a]) * np.linalg.norm(others))))
    return {"var": float(np.mean(var)), "snr": snr, "cos": float(np.mean(cos)), "kurt": float(np.mean(kurt))}


def test_statistics_match_hand_computation_on_chosen_dims() -> None:
    g = hand_gradients()
    got = gradient_statistics(g, [2, 3])
    want = reference(g, [2, 3])
    for name in ("var", "snr", "cos", "kurt"):
        assert got[f"{name}_chosen"] == pytest.approx(want[name], rel=1e-12)
    # Dimension 2 by hand: values 2, 4, 0, 3, 6 -> mean 3, sample variance (1 + 1 + 9 + 0 + 9) / 4 = 5;
    # leave-one-out signal mean^2 - var / S = 9 - 1 = 8, so the SNR is sqrt(8 / 5) (not |mean| / std = 3 / sqrt 5).
    assert gradient_statistics(g, [2])["var_chosen"] == pytest.approx(5.0)
    assert gradient_statistics(g, [2])["snr_chosen"] == pytest.approx(math.sqrt(8 / 5))


def test_statistics_over_all_dims_and_degenerate_columns() -> None:
    g = hand_gradients()
    got = gradient_statistics(g, [0])
    # All dims: variance averages in the constant and the all-zero dimension (both 0).
    assert got["var_all"] == pytest.approx(np.var(g, axis=0, ddof=1).mean())
    # Constant nonzero dim: no noise, infinite SNR; the all-zero dim is left out of the SNR mean.
    assert got["snr_chosen"] == math.inf and got["snr_all"] == math.inf
    # Kurtosis leaves constant dims out; it matches scipy's Fisher, biased estimator on the others.
    assert got["kurt_all"] == pytest.approx(np.mean(sps.kurtosis(g[:, 2:], axis=0, fisher=True, bias=True)))
    assert math.isnan(got["kurt_chosen"])
    assert got["cos_all"] == pytest.approx(reference(g, [0, 1, 2, 3])["cos"])
    assert got["zero_frac"] == 0.0
    assert got["grad_norm"] == pytest.approx(np.linalg.norm(g, axis=1).mean())
    total_var = np.var(g, axis=0, ddof=1).sum()
    signal = (np.linalg.norm(g.mean(0)) ** 2 - total_var / len(g))  # leave-one-out ||E g||^2
    assert got["snr_vec"] == pytest.approx(math.sqrt(signal / total_var))


def test_identical_gradients_have_zero_variance_and_unit_cosine() -> None:
    g = np.tile(np.array([0.5, -1.0, 0.0, 2.0]), (6, 1))
    got = gradient_statistics(g, [0, 1])
    assert got["var_chosen"] == 0.0 and got["var_all"] == 0.0
    assert got["snr_all"] == math.inf and got["snr_vec"] == math.inf
    assert got["cos_all"] == pytest.approx(1.0)
    assert math.isnan(got["kurt_all"])


def test_zero_gradient_samples_are_counted_and_left_out_of_cosine() -> None:
    g = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 3.0], [0.0, 0.0]])
    got = gradient_statistics(g, [0, 1])
    assert got["zero_frac"] == 0.5
    # Leave-one-out: sample 0 against the mean of the others, [1, 3] / 3; sample 2 against [1, 1] / 3.
    assert got["cos_all"] == pytest.approx(4 / math.sqrt(20))


def test_leave_one_out_statistics_of_pure_noise_are_about_zero() -> None:
    """Pure noise, S = 50: cos(g_s, mean g) with the sample inside the mean is about 0.14 (the sample agrees
    with itself); against the mean of the others it is about 0, and so is the vector SNR."""
    rng = np.random.default_rng(0)
    stats = [gradient_statistics(rng.standard_normal((50, 784)), [0, 1, 2, 3, 4]) for _ in range(40)]
    cos = np.mean([s["cos_all"] for s in stats])
    assert abs(cos) < 0.01, cos
    assert abs(np.mean([s["snr_vec"] for s in stats])) < 0.01
    g = rng.standard_normal((50, 784))
    full_mean = g.mean(0)
    inside = np.mean(g @ full_mean / (np.linalg.norm(g, axis=1) * np.linalg.norm(full_mean)))
    assert inside == pytest.approx(1 / math.sqrt(50), abs=0.03)  # the floor leave-one-out removes
    # A real signal still shows: mean 0.3 per dimension, unit noise.
    signal = gradient_statistics(rng.standard_normal((50, 784)) + 0.3, [0])
    assert signal["snr_vec"] == pytest.approx(0.3, abs=0.03) and signal["snr_all"] == pytest.approx(0.3, abs=0.05)


def test_statistics_need_two_samples() -> None:
    with pytest.raises(DefdropError, match="at least 2 samples"):
        gradient_statistics(np.ones((1, 3)), [0])


@settings(max_examples=40, deadline=None)
@given(g=arrays(np.float64, (8, 5), elements=st.floats(-10, 10, allow_nan=False).map(lambda v: round(v, 3))),
       scale=st.floats(0.1, 10))
def test_scaling_gradients_scales_variance_and_leaves_snr_cosine_kurtosis(g: np.ndarray, scale: float) -> None:
    a, b = gradient_statistics(g, [0, 1, 2]), gradient_statistics(g * scale, [0, 1, 2])
    assert set(a) == set(STATISTICS)
    assert b["var_all"] == pytest.approx(a["var_all"] * scale ** 2, rel=1e-9, abs=1e-12)
    for key in ("snr_all", "cos_all", "kurt_all", "snr_vec", "zero_frac"):
        if math.isfinite(a[key]) and math.isfinite(b[key]):
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9)
    if math.isfinite(a["cos_all"]):
        assert -1 - 1e-12 <= a["cos_all"] <= 1 + 1e-12
    assert a["var_all"] >= 0


def test_choose_dims_by_magnitude_is_deterministic_with_ties_to_lower_index() -> None:
    ref = np.array([0.1, -3.0, 2.0, 3.0, 0.0, -2.0])
    assert choose_dims(ref, 3, "magnitude").tolist() == [1, 3, 2]
    assert choose_dims(ref, 4, "magnitude").tolist() == [1, 3, 2, 5]


def test_choose_dims_at_random_is_reproducible_and_distinct() -> None:
    ref = np.zeros(100)
    a = choose_dims(ref, 5, "random", np.random.default_rng(7))
    b = choose_dims(ref, 5, "random", np.random.default_rng(7))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 5
    with pytest.raises(DefdropError, match="must be one of"):
        choose_dims(ref, 5, "largest")


def test_bootstrap_mean_interval() -> None:
    mean, low, high, se = bootstrap_mean(np.full(10, 2.5))
    assert (mean, low, high, se) == (2.5, 2.5, 2.5, 0.0)
    values = np.random.default_rng(0).normal(1.0, 1.0, 400)
    mean, low, high, se = bootstrap_mean(values, seed=1)
    # The percentile interval of a mean of 400 draws is about mean +- 1.96 sd / 20.
    assert mean == pytest.approx(values.mean())
    assert low < mean < high
    assert se == pytest.approx(values.std(ddof=1) / 20, rel=0.15)
    assert (high - low) == pytest.approx(2 * 1.96 * values.std(ddof=1) / 20, rel=0.15)
    assert bootstrap_mean(np.array([1.0, np.nan, 3.0]), seed=0)[0] == 2.0  # NaNs dropped
    assert bootstrap_mean(np.array([math.inf, math.inf]))[:3] == (math.inf, math.inf, math.inf)
    one = bootstrap_mean(np.array([4.0]))
    assert one[0] == 4.0 and math.isnan(one[1]) and math.isnan(one[2])
