"""Conclusions from doctored tables: every verdict from an interval, every sentence only when its condition holds."""
from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd

import analysis.conclusions as conclusions
from analysis.conclusions import (
    adaptive_effect,
    believed_vs_measured,
    headline,
    sap_vs_dropout,
    summary_line,
    table_agreement,
    trend,
    write_conclusions,
)
from analysis.paper import compare_with_paper, is_adaptive, paper_numbers
from analysis.verdicts import ADAPTIVE_RISE_MARGIN, AGREES, DISAGREES, INCONCLUSIVE
from gameplay.images import Estimate, ImageData, difference
from gameplay.table import payoff_table_from_frame


def cell(attacker: str, attack: str, defense: str, rate: float, asr: float, se: float = 0.01, *, r: float = 0.3,
         eot: int = 1, test: str = "single", kappa: float = 0.0, acc: float = 0.98, dataset: str = "mnist-5k",
         believed: float = math.nan, n_images: int = 100) -> dict:
    """One payoff row with a normal 95% interval of half-width 1.96 se (clipped to [0, 1])."""
    label = "none" if defense == "none" else ("sap[frac=1]" if defense == "sap" else f"dropout[r'={rate:g}]")
    return {"attacker": attacker, "attack": attack, "kappa": kappa, "eot": eot, "success_test": test,
            "defender": label, "defense": defense, "train_dropout": r, "test_dropout": rate,
            "model": f"m{r:g}", "dataset": dataset, "n_images": n_images, "n_attacks": 9 * n_images,
            "n_samples": 20, "asr": asr, "asr_low": max(0.0, asr - 1.96 * se), "asr_high": min(1.0, asr + 1.96 * se),
            "asr_std_error": se, "asr_believed": believed, "asr_majority": asr, "l2_mean": 2.0,
            "clean_accuracy": acc, "clean_accuracy_low": acc - 0.005, "clean_accuracy_high": acc + 0.005,
            "key": f"{attacker}|{label}|{r:g}", "accuracy_key": f"acc|{label}|{r:g}"}


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def headline_table(r: float = 0.3, dataset: str = "mnist-5k", defended: float = 0.1389,
                   se: float = 0.005) -> pd.DataFrame:
    return frame(cell("cw[k=0]", "cw", "none", 0.0, 1.0, 0.0, r=r, dataset=dataset, acc=0.99),
                 cell("cw[k=0]", "cw", "dropout", 0.5, defended, se, r=r, dataset=dataset, acc=0.982))


# --------------------------------------------------------------------------- headline
def test_headline_agrees_only_on_the_papers_model_and_dataset() -> None:
    assert headline(headline_table()).verdict == AGREES
    assert "mnist-5k (a 5,000-image subset of MNIST)" in headline(headline_table()).text
    # Fashion-MNIST with only an r = 0.9 model: once "agrees" by taking the nearest training rate anywhere.
    fashion = headline_table(r=0.9, dataset="fashion-mnist")
    h = headline(fashion)
    assert h.verdict == "info" and "not comparable here" in h.text and "r = 0.3" in h.text
    h = headline(headline_table(dataset="fashion-mnist"))
    assert h.verdict == "info" and "not comparable here" in h.text and "fashion-mnist" in h.text
    h = headline(headline_table(r=0.5))
    assert h.verdict == "info" and "no model trained at r = 0.3" in h.text


def test_headline_reads_the_papers_numbers_from_the_json(monkeypatch) -> None:
    numbers = copy.deepcopy(paper_numbers())
    numbers["headline"]["asr_defended"] = 0.40
    numbers["headline"]["asr_undefended"] = 0.97
    monkeypatch.setattr(conclusions, "paper_numbers", lambda: numbers)
    h = headline(headline_table(defended=0.40))
    assert h.verdict == AGREES and "97% -> 40%" in h.text and "13.89" not in h.text


def test_headline_inside_a_wide_interval_is_not_agreement() -> None:
    """The paper's value inside our interval is not enough: the interval must lie within the margin."""
    wide = headline(headline_table(defended=0.16, se=0.04))
    assert wide.verdict == INCONCLUSIVE
    far = headline(headline_table(defended=0.30, se=0.01))
    assert far.verdict == DISAGREES and "+16.1 pp" in far.text


# --------------------------------------------------------------------------- the paper's tables
def test_table_agreement_needs_intervals_within_the_margin() -> None:
    paper = paper_numbers()["tables"]["table4"]["rows"]["0.7"]
    rows = [cell("fgsm", "fgsm", "none" if q == "0.0" else "dropout", float(q), v + 0.01, 0.06, r=0.7)
            for q, v in paper.items()]
    # Every paper value lies inside our (wide) intervals: the old rule said "agrees".
    found = {f.topic: f for f in table_agreement(compare_with_paper(frame(*rows)))}
    assert found["table4"].verdict == INCONCLUSIVE and "0 agree" in found["table4"].text
    tight = [cell("fgsm", "fgsm", "none" if q == "0.0" else "dropout", float(q), v + 0.01, 0.005, r=0.7)
             for q, v in paper.items()]
    assert {f.topic: f for f in table_agreement(compare_with_paper(frame(*tight)))}["table4"].verdict == AGREES


# --------------------------------------------------------------------------- SAP against dropout
def test_overlapping_sap_and_dropout_intervals_are_inconclusive() -> None:
    rows = frame(cell("cw[k=0]", "cw", "dropout", 0.3, 0.20, 0.03, acc=0.97),
                 cell("cw[k=0]", "cw", "sap", math.nan, 0.24, 0.03, acc=0.971))
    f = sap_vs_dropout(rows)[0]
    assert f.verdict == INCONCLUSIVE and "not shown" in f.text  # the old point comparison said "agrees"
    clear = frame(cell("cw[k=0]", "cw", "dropout", 0.3, 0.20, 0.01, acc=0.97),
                  cell("cw[k=0]", "cw", "sap", math.nan, 0.60, 0.01, acc=0.971))
    assert sap_vs_dropout(clear)[0].verdict == AGREES
    reverse = frame(cell("cw[k=0]", "cw", "dropout", 0.3, 0.60, 0.01, acc=0.97),
                    cell("cw[k=0]", "cw", "sap", math.nan, 0.20, 0.01, acc=0.971))
    assert sap_vs_dropout(reverse)[0].verdict == DISAGREES


# --------------------------------------------------------------------------- believed against measured
def test_believed_below_measured_writes_no_mismatch_sentence() -> None:
    rows = frame(cell("cw[k=0]", "cw", "dropout", 0.5, 0.40, 0.02, believed=0.30),
                 cell("cw[k=0]", "cw", "dropout", 0.7, 0.30, 0.02, believed=0.31))
    assert believed_vs_measured(rows) == []
    text = " ".join(f.text for f in write_conclusions(rows, compare_with_paper(rows)))
    assert "believ" not in text and "mismatch" not in text
    above = frame(cell("cw[k=0]", "cw", "dropout", 0.5, 0.20, 0.02, believed=0.97),
                  cell("cw[k=0]", "cw", "dropout", 0.7, 0.30, 0.02, believed=0.31))
    (f,) = believed_vs_measured(above)
    assert "r' = 0.5 " in f.text and "0.7" not in f.text.split("largest")[0]
    assert "Part of the paper's low ASR" not in f.text and "does not say how its attacker judged" in f.text


# --------------------------------------------------------------------------- the adaptive attacker
def adaptive_table(paper: float, adaptive: float, se: float = 0.02, attack: str = "jsma") -> pd.DataFrame:
    return frame(cell(attack, attack, "dropout", 0.5, paper, se),
                 cell(f"{attack}[eot=8,exp]", attack, "dropout", 0.5, adaptive, se, eot=8, test="expected"))


def test_jsma_85_to_93_is_not_holds_up() -> None:
    (f,) = adaptive_effect(adaptive_table(0.85, 0.93))
    assert f.verdict != AGREES and "holds up" not in f.text  # the old rule: +8 pp < 10 pp, "holds up"
    (f,) = adaptive_effect(adaptive_table(0.85, 0.93, se=0.005))
    assert f.verdict == DISAGREES and "does not survive" in f.text
    (f,) = adaptive_effect(adaptive_table(0.85, 0.85, se=0.005))
    assert f.verdict == AGREES and "holds up" in f.text
    (f,) = adaptive_effect(adaptive_table(0.85, 0.85 + ADAPTIVE_RISE_MARGIN, se=0.005))
    assert f.verdict == INCONCLUSIVE


def test_the_designated_adaptive_attacker_is_chosen_by_protocol_not_by_asr() -> None:
    """Two adaptive columns: EOT 8 with the expected test (the designated one) at 40%, and a weaker-by-protocol
    EOT 2 column that happened to score 90%. The comparison uses the designated one."""
    rows = frame(cell("cw[k=0]", "cw", "dropout", 0.5, 0.38, 0.01),
                 cell("cw[k=0,eot=2]", "cw", "dropout", 0.5, 0.90, 0.01, eot=2),
                 cell("cw[k=0,eot=8,exp]", "cw", "dropout", 0.5, 0.40, 0.01, eot=8, test="expected"))
    (f,) = adaptive_effect(rows)
    assert "cw[k=0,eot=8,exp]" in f.text and f.verdict == AGREES


def test_kappa_alone_makes_an_attacker_adaptive_everywhere() -> None:
    rows = frame(cell("cw[k=0]", "cw", "dropout", 0.5, 0.2), cell("cw[k=5]", "cw", "dropout", 0.5, 0.5, kappa=5.0),
                 cell("cw[k=0]", "cw", "none", 0.0, 1.0, acc=0.99), cell("cw[k=5]", "cw", "none", 0.0, 1.0, kappa=5.0,
                                                                          acc=0.99))
    assert list(is_adaptive(rows)) == [False, True, False, True]
    table = payoff_table_from_frame(rows)
    assert [a.adaptive for a in table.attackers] == [False, True]


# --------------------------------------------------------------------------- the trend in r'
def test_trend_is_decided_by_the_slopes_interval() -> None:
    falling = frame(*[cell("cw[k=0]", "cw", "dropout", q, a, 0.01) for q, a in ((0.1, 0.6), (0.3, 0.4), (0.5, 0.2))])
    assert trend(falling)[0].verdict == AGREES
    # Monotone (Spearman rho = -1: the old rule said "falls") but well within the noise.
    noisy = frame(*[cell("cw[k=0]", "cw", "dropout", q, a, 0.1) for q, a in ((0.1, 0.50), (0.3, 0.49), (0.5, 0.48))])
    f = trend(noisy)[0]
    assert f.verdict == INCONCLUSIVE and "not shown" in f.text
    flat = frame(*[cell("cw[k=0]", "cw", "dropout", q, 1.0, 0.0) for q in (0.1, 0.3, 0.5)])
    assert trend(flat)[0].verdict == DISAGREES


# --------------------------------------------------------------------------- paired differences
def images_for(rows: pd.DataFrame, per_image: dict[str, np.ndarray], n_test: int = 200) -> ImageData:
    keys = list(per_image)
    n = len(next(iter(per_image.values())))
    acc_keys = list(dict.fromkeys(rows["accuracy_key"]))
    correct = np.array([np.full(n_test, float(rows.loc[rows["accuracy_key"] == k, "clean_accuracy"].iloc[0]))
                        for k in acc_keys])
    return ImageData.from_arrays(np.array(keys), np.tile(np.arange(n), (len(keys), 1)),
                                 np.array([per_image[k] for k in keys]), np.array(acc_keys), correct)


def test_paired_difference_of_cells_on_the_same_images() -> None:
    """Two cells that differ by 2 points on every image: the paired interval is tight around +2 pp, where
    the independent one (each cell's own standard error) straddles 0."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 40)
    images = ImageData.from_arrays(np.array(["a", "b"]), np.tile(np.arange(40), (2, 1)),
                                   np.stack([np.clip(base + 0.02, 0, 1), base]), np.array([], dtype=str),
                                   np.zeros((0, 40)))
    a_mean, b_mean = images.cell_means(np.array([0, 1]))
    se = base.std(ddof=1) / math.sqrt(40)
    paired = difference(Estimate(a_mean, se, "a"), Estimate(b_mean, se, "b"), images, level=0.95)
    independent = difference(Estimate(a_mean, se, "a"), Estimate(b_mean, se, "b"), None, level=0.95)
    assert paired.paired and not independent.paired
    assert 0 < paired.low <= paired.estimate <= paired.high < 0.03
    assert independent.low < 0 < independent.high


def test_conclusions_use_the_images_when_given() -> None:
    rows = adaptive_table(0.50, 0.56, se=0.04, attack="cw")
    per = {rows["key"][0]: np.full(100, 0.50), rows["key"][1]: np.full(100, 0.56)}
    (independent,) = adaptive_effect(rows)
    (paired,) = adaptive_effect(rows, images=images_for(rows, per))
    assert independent.verdict == INCONCLUSIVE and "cells taken as independent" in independent.text
    assert paired.verdict == DISAGREES and "paired over images" in paired.text


def test_summary_counts_verdicts() -> None:
    rows = pd.concat([headline_table(), adaptive_table(0.85, 0.93, se=0.005)], ignore_index=True)
    findings = write_conclusions(rows, compare_with_paper(rows))
    line = summary_line(findings)
    assert "does not survive in 1" in line and "agree" in line
    assert all(f.verdict in (AGREES, DISAGREES, INCONCLUSIVE, "info") for f in findings)


def test_variance_finding_says_why_an_interval_excluding_zero_is_not_a_relation() -> None:
    """The interval over images is image noise only; with few strategies the permutation test decides, and the
    sentence must not read as if the interval had shown nothing."""
    from analysis.conclusions import variance_finding

    row = pd.Series({"n": 6, "rho": -0.31, "rho_low": -0.89, "rho_high": -0.23, "p_value": 0.564,
                     "interval": "bootstrap over images", "verdict": INCONCLUSIVE})
    text = variance_finding(row).text
    assert "excludes 0" in text and "permutation test does not reject" in text
    wide = variance_finding(row.copy().replace({-0.23: 0.4})).text
    assert "excludes 0" not in wide and "no relation is shown" in wide
