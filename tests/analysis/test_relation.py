"""Gradient statistics against ASR over defender strategies, on synthetic statistics and payoff tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.gradvar import STATISTICS, variance_asr_relation
from payoffs.errors import DefdropError
from tests.analysis.conftest import make_payoff_table

RATES = (0.1, 0.3, 0.5, 0.7, 0.9)


def make_stats(var_of, train_dropout: float = 0.3, se: float = 1e-6, model: str = "model-r0.3") -> pd.DataFrame:
    """A GradVarResult.table look-alike: var_all = var_of(kind, rate); SNR = 1 / sqrt(var) (inf for none)."""
    rows = []
    strategies = [("none", "none", 0.0)] + [(f"dropout[r'={q:g}]", "dropout", q) for q in RATES] + [
        ("sap[frac=1]", "sap", math.nan)]
    for label, kind, rate in strategies:
        v = float(var_of(kind, rate))
        row = {"defender": label, "defense": kind, "test_dropout": rate, "train_dropout": train_dropout,
               "model": model}
        for stat in STATISTICS:
            value = v if stat.startswith("var") else (math.inf if v == 0 else 1 / math.sqrt(v))
            row.update({stat: value, f"{stat}_low": value - 2 * se, f"{stat}_high": value + 2 * se,
                        f"{stat}_se": se})
        rows.append(row)
    return pd.DataFrame(rows)


def paper_var(kind: str, rate: float) -> float:
    """The paper's story: variance grows with r', SAP is small (between r' = 0 and 0.1)."""
    return {"none": 0.0, "sap": 0.0005}.get(kind, rate / (1 - rate) * 0.01 if kind == "dropout" else 0.0)


def paper_asr(kind: str, rate: float, r: float) -> float:
    return {"none": 1.0, "sap": 0.95}.get(kind, 0.9 - rate)


def test_perfect_ranking_gives_rho_minus_one_and_an_exact_permutation_p() -> None:
    stats = make_stats(paper_var)
    payoff = make_payoff_table(attackers=("cw",), asr_of=paper_asr, asr_se=0.001)
    rel = variance_asr_relation(stats, payoff)
    row = rel.table.set_index("statistic").loc["var_all"]
    assert row["n"] == 7
    assert row["rho"] == pytest.approx(-1.0)
    # Two of the 7! pairings reach |rho| = 1.
    assert row["p_value"] == pytest.approx(2 / math.factorial(7))
    assert row["rho_high"] < 0
    assert row["verdict"] == "agrees" and row["expected"] == "-"
    snr = rel.table.set_index("statistic").loc["snr_all"]
    assert snr["rho"] == pytest.approx(1.0) and snr["verdict"] == "agrees"
    # Only the statistics' model (train_dropout 0.3) is used, one attacker: one row per statistic.
    assert len(rel.table) == len(rel.statistics)
    assert len(rel.points) == 7


def test_rho_matches_scipy_and_sap_out_of_line_is_reported() -> None:
    # SAP has a tiny variance but a low ASR: against the paper's explanation for that one point.
    asr = lambda kind, rate, r: {"none": 1.0, "sap": 0.05}.get(kind, 0.9 - rate)  # noqa: E731
    stats = make_stats(paper_var)
    rel = variance_asr_relation(stats, make_payoff_table(attackers=("cw",), asr_of=asr, asr_se=0.001))
    row = rel.table.set_index("statistic").loc["var_all"]
    pts = rel.points
    assert row["rho"] == pytest.approx(sps.spearmanr(pts["var_all"], pts["asr"]).statistic)
    assert row["rho_dropout_only"] == pytest.approx(-1.0)
    assert row["rho"] > -1.0


def test_opposite_relation_is_against_the_paper() -> None:
    asr = lambda kind, rate, r: {"none": 0.0, "sap": 0.05}.get(kind, rate)  # noqa: E731
    rel = variance_asr_relation(make_stats(paper_var), make_payoff_table(attackers=("cw",), asr_of=asr, asr_se=0.001))
    assert rel.table.set_index("statistic").loc["var_all", "verdict"] == "disagrees"


def test_noisy_estimates_widen_the_interval_and_stay_inconclusive() -> None:
    asr = lambda kind, rate, r: {"none": 0.5, "sap": 0.52}.get(kind, 0.5 + 0.01 * np.sin(10 * rate))  # noqa: E731
    rel = variance_asr_relation(make_stats(paper_var, se=0.01),
                                make_payoff_table(attackers=("cw",), asr_of=asr, asr_se=0.1))
    row = rel.table.set_index("statistic").loc["var_all"]
    assert row["rho_low"] < 0 < row["rho_high"]
    assert row["verdict"] == "inconclusive"


def test_groups_by_attacker_and_filters_the_model() -> None:
    payoff = make_payoff_table(train_rates=(0.0, 0.3, 0.7), attackers=("cw", "fgsm"), asr_of=paper_asr)
    rel = variance_asr_relation(make_stats(paper_var), payoff, statistics=("var_all",))
    assert list(rel.table["attacker"]) == ["cw", "fgsm"]
    assert (rel.table["n"] == 7).all()
    # A statistics table for a model the payoff table does not hold is an error, not an empty result.
    with pytest.raises(DefdropError, match="no rows for the statistics' model"):
        variance_asr_relation(make_stats(paper_var, train_dropout=0.5), payoff)


@pytest.mark.parametrize("drop,message", [("asr", "payoff table lacks column 'asr'"),
                                          ("attacker", "payoff table lacks column 'attacker'")])
def test_missing_columns_are_one_line_errors(drop: str, message: str) -> None:
    payoff = make_payoff_table().drop(columns=drop)
    with pytest.raises(DefdropError, match=message):
        variance_asr_relation(make_stats(paper_var), payoff)


def test_two_sap_variants_are_ambiguous() -> None:
    payoff = make_payoff_table(train_rates=(0.3,), attackers=("cw",))
    payoff = pd.concat([payoff, payoff[payoff["defense"] == "sap"].assign(defender="sap[frac=0.5]")])
    with pytest.raises(DefdropError, match="several cells"):
        variance_asr_relation(make_stats(paper_var), payoff)


def test_sap_variants_are_told_apart_by_draws() -> None:
    payoff = make_payoff_table(train_rates=(0.3,), attackers=("cw",), asr_of=paper_asr, asr_se=0.001)
    payoff["sap_draws"] = np.nan
    other = payoff[payoff["defense"] == "sap"].assign(defender="sap[n=5]", sap_draws=5.0, asr=0.0)
    rel = variance_asr_relation(make_stats(paper_var), pd.concat([payoff, other]), statistics=("var_all",))
    sap = rel.points[rel.points["defense"] == "sap"]
    assert len(sap) == 1 and sap["asr"].iloc[0] == pytest.approx(0.95)  # the one-draw-per-unit SAP (NaN draws)


def test_read_payoff_frame_validates_the_csv(tmp_path) -> None:
    from analysis.gradvar import read_payoff_frame

    path = tmp_path / "payoff.csv"
    make_payoff_table().to_csv(path, index=False)
    frame = read_payoff_frame(path)
    assert len(frame) == len(make_payoff_table())
    with pytest.raises(DefdropError, match="does not exist"):
        read_payoff_frame(tmp_path / "missing.csv")


# --------------------------------------------------------------------------- intervals over images
def per_image_stats(var_of, images: int = 12, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A GradVarResult.per_image look-alike: per image and defender, var_all = var_of(kind, rate) x (1 + noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    strategies = [("none", "none", 0.0)] + [(f"dropout[r'={q:g}]", "dropout", q) for q in RATES] + [
        ("sap[frac=1]", "sap", math.nan)]
    for i in range(images):
        for label, kind, rate in strategies:
            v = float(var_of(kind, rate)) * (1 + noise * rng.standard_normal())
            rows.append({"image": i, "defender": label, "defense": kind, "test_dropout": rate,
                         **{s: v if s.startswith("var") else (math.inf if v == 0 else 1 / math.sqrt(abs(v)))
                            for s in STATISTICS}})
    return pd.DataFrame(rows)


def test_interval_over_images_is_named_and_used() -> None:
    stats, payoff = make_stats(paper_var), make_payoff_table(attackers=("cw",), asr_of=paper_asr, asr_se=0.001)
    noise = variance_asr_relation(stats, payoff, statistics=("var_all",))
    assert "measurement-noise interval" in noise.table["interval"].iloc[0]
    boot = variance_asr_relation(stats, payoff, statistics=("var_all",), per_image=per_image_stats(paper_var))
    row = boot.table.iloc[0]
    assert row["interval"].startswith("bootstrap over images") and row["verdict"] == "agrees"
    # Per-image variances so noisy that the ranking of strategies is not sure: the bootstrap interval says so,
    # although each strategy's standard error in the summary table is tiny.
    noisy = variance_asr_relation(stats, payoff, statistics=("var_all",),
                                  per_image=per_image_stats(paper_var, images=4, noise=3.0))
    assert noisy.table["rho_low"].iloc[0] < 0 < noisy.table["rho_high"].iloc[0]
    assert noisy.table["verdict"].iloc[0] == "inconclusive"


def test_permutation_test_is_exact_up_to_seven_strategies() -> None:
    from analysis.gradvar import _permutation_p

    x = np.arange(7.0)
    assert _permutation_p(x, -x, seed=0) == pytest.approx(2 / math.factorial(7))  # exact: 2 of 5040
    x = np.arange(8.0)
    p = _permutation_p(x, -x, seed=0)
    assert p == pytest.approx(1 / 10000, abs=3 / 10000)  # 9999 random pairings + the observed one
    assert p != pytest.approx(2 / math.factorial(8))


# --------------------------------------------------------------------------- the paper's checks, from intervals
def gradvar_result(per_image: pd.DataFrame):
    from analysis.gradvar import GradVarResult

    summary = per_image.groupby("defender", sort=False).agg(defense=("defense", "first"),
                                                             test_dropout=("test_dropout", "first"),
                                                             var_all=("var_all", "mean")).reset_index()
    return GradVarResult(table=summary, per_image=per_image, values=np.zeros((1, 1, 1, 1)), dims=np.zeros((1, 1)),
                         labels=tuple(summary["defender"]), input_shape=(1, 28, 28), true_labels=np.zeros(1),
                         targets=np.zeros(1), samples=2, dim_selection="magnitude", seed=0, kappa=0.0)


def test_paper_checks_come_from_intervals_over_images() -> None:
    from analysis.gradvar import paper_checks

    clear = paper_checks(gradvar_result(per_image_stats(paper_var, images=12)))
    assert clear[0].verdict == "agrees" and clear[0].holds is True
    assert clear[1].verdict == "agrees"  # SAP's 0.0005 is below r' = 0.1's 0.0011 on every image
    # Means strictly increasing in r' (the old check said "holds"), but on half the images each step goes down.
    rows = []
    for i in range(6):
        for k, (label, kind, rate) in enumerate([("none", "none", 0.0)] + [(f"dropout[r'={q:g}]", "dropout", q)
                                                                            for q in RATES]):
            swing = 0.5 if (i + k) % 2 == 0 else -0.5
            rows.append({"image": i, "defender": label, "defense": kind, "test_dropout": rate,
                         "var_all": 1.0 + 0.01 * k + swing})
    noisy = gradvar_result(pd.DataFrame(rows))
    assert np.all(np.diff(noisy.table["var_all"]) > 0)
    (check,) = paper_checks(noisy)
    assert check.verdict == "inconclusive" and check.holds is None
    falling = pd.DataFrame(rows).assign(var_all=lambda d: 2.0 - d["test_dropout"])
    assert paper_checks(gradvar_result(falling))[0].verdict == "disagrees"
