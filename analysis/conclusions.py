"""Conclusions written from the numbers: agreement with the paper, and what an adaptive attacker does.

Every sentence is computed from the payoff table (and its per-image data, when there is some) and written only
when its condition holds, so different numbers give different conclusions (tested with doctored tables). Every
verdict is one of agrees / disagrees / inconclusive, decided by an interval by the rules and thresholds of
:mod:`analysis.verdicts` (one level, named margins). Comparisons of two of our cells use the interval of their
difference from :func:`gameplay.images.difference`: paired over test images when ``images`` holds both cells,
otherwise the two standard errors combined as if independent; the sentence says which.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.formatting import pct, percent_number, pp, pp_interval, sig
from analysis.paper import (
    COMPARED,
    MNIST_DATASETS,
    NOT_COMPARABLE,
    comparable_dataset,
    is_adaptive,
    paper_numbers,
    paper_recipe,
    published_pct,
    recipe_text,
)
from analysis.verdicts import (
    ADAPTIVE_RISE_MARGIN,
    AGREEMENT_MARGIN,
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    LEVEL,
    against_sign,
    against_value,
    below_margin,
    combine,
    level_text,
    z_value,
)
from gameplay.images import Estimate, ImageData, Interval, contrast, difference
from gameplay.rules import designated_adaptive

INFO = "info"
"""A finding that states numbers without a verdict (no comparison it could agree or disagree with)."""


@dataclass(frozen=True)
class Finding:
    topic: str
    verdict: str  # agrees | disagrees | inconclusive | info
    text: str


# --------------------------------------------------------------------------- formatting and estimates
# The shared formatter (analysis.formatting): rates in percent with 3 significant digits, differences in pp.
_pct = pct
_paper_pct = published_pct
_pp = pp


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _span(low: float, high: float, unit: str = "%") -> str:
    """The interval after an estimate: ``[89.0, 93.5]`` (percent) or ``[+1.23, +4.56] pp``."""
    if unit == "pp":
        return pp_interval(low, high)
    return "[n/a]" if math.isnan(low) or math.isnan(high) else f"[{percent_number(low)}, {percent_number(high)}]"


def _how(iv: Interval) -> str:
    if iv.paired:
        return "paired over images"
    if "all equal" in iv.method:
        return "paired over images, every image giving the same difference, so with the cells' own standard errors"
    return "cells taken as independent"


def _se(row: pd.Series, metric: str) -> float:
    """A cell's standard error: the table's, else its interval's width / (2 z)."""
    col = f"{metric}_std_error"
    if col in row and pd.notna(row[col]):
        return float(row[col])
    low, high = row.get(f"{metric}_low", math.nan), row.get(f"{metric}_high", math.nan)
    return float(high - low) / (2 * z_value()) if pd.notna(low) and pd.notna(high) else math.nan


def _key(row: pd.Series, col: str) -> str | None:
    value = row.get(col)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def asr_estimate(row: pd.Series) -> Estimate:
    return Estimate(float(row["asr"]), _se(row, "asr"), _key(row, "key"), "asr")


def accuracy_estimate(row: pd.Series) -> Estimate:
    return Estimate(float(row["clean_accuracy"]), _se(row, "clean_accuracy"), _key(row, "accuracy_key"), "accuracy")


def _rows(table: pd.DataFrame, attack: str, r: float, r_test: float) -> pd.DataFrame:
    return table[(table["attack"] == attack) & np.isclose(table["train_dropout"], r) & (table["defense"] != "sap")
                 & np.isclose(table["test_dropout"].fillna(-1), r_test)]


def paper_cell(table: pd.DataFrame, attack: str, r: float, r_test: float) -> pd.Series | None:
    """The paper's attacker (not adaptive) against model r at test rate r'; the first such row."""
    rows = _rows(table, attack, r, r_test)
    rows = rows[~is_adaptive(rows)]
    return None if rows.empty else rows.iloc[0]


def designated_cell(rows: pd.DataFrame) -> pd.Series | None:
    """The designated adaptive attacker's row among ``rows`` (:func:`gameplay.rules.designated_adaptive`:
    fixed by the protocol, never by the measured ASR)."""
    kappa = rows["kappa"] if "kappa" in rows else pd.Series(0.0, index=rows.index)
    i = designated_adaptive(list(zip(rows["eot"], rows["success_test"], kappa)))
    return None if i is None else rows.iloc[i]


# --------------------------------------------------------------------------- the findings
def headline(table: pd.DataFrame, images: ImageData | None = None) -> Finding:
    """The paper's headline (C&W on MNIST, r, r' and rates from ``paper_numbers.json``) against ours.

    Compared only on a model trained at exactly the headline's r on MNIST (or mnist-5k, a subset of it); any
    other table gets "not comparable here" and the reason, not a verdict.
    """
    h = paper_numbers()["headline"]
    r, r_test = float(h["train_dropout"]), float(h["test_dropout"])
    claim = (f"Headline (C&W on MNIST, r = {r:g}, r' = {r_test:g}; the paper reports ASR "
             f"{_paper_pct(h['asr_undefended'])} -> {_paper_pct(h['asr_defended'])} at a "
             f"{_paper_pct(h['accuracy_drop'])} accuracy cost)")

    def not_comparable(reason: str) -> Finding:
        return Finding("headline", INFO, f"{claim}: not comparable here: {reason}.")

    cw = table[(table["attack"] == h["attack"]) & ~is_adaptive(table)]
    if cw.empty:
        return not_comparable("the table has no C&W cells of the paper's attacker")
    at_r = cw[np.isclose(cw["train_dropout"], r, rtol=0.0, atol=1e-9)]
    if at_r.empty:
        rates = ", ".join(f"{x:g}" for x in sorted(cw["train_dropout"].unique()))
        return not_comparable(f"no model trained at r = {r:g} (the table's C&W models have r = {rates})")
    if "dataset" not in at_r:
        return not_comparable("the table does not name its dataset")
    same = at_r[[comparable_dataset(h["dataset"], str(d)) for d in at_r["dataset"]]]
    if same.empty:
        return not_comparable(f"the paper's headline is on MNIST; this table's r = {r:g} model is on "
                              f"{', '.join(sorted(set(map(str, at_r['dataset']))))}")
    plain = same[paper_recipe(same)]
    if plain.empty:
        return not_comparable(f"this table's r = {r:g} model is {recipe_text(same)}; the paper's is trained "
                              "plainly")
    same = plain
    base, defended = paper_cell(same, h["attack"], r, 0.0), paper_cell(same, h["attack"], r, r_test)
    if base is None or defended is None:
        missing = "r' = 0" if base is None else f"r' = {r_test:g}"
        return not_comparable(f"the table has no C&W cell of the paper's attacker at {missing} on that model")
    # Both ends of the headline: the undefended 100% and the defended 13.89%.
    verdict = combine([against_value(float(base["asr_low"]), float(base["asr_high"]), h["asr_undefended"]),
                       against_value(float(defended["asr_low"]), float(defended["asr_high"]), h["asr_defended"])])
    drop = difference(accuracy_estimate(base), accuracy_estimate(defended), images, level=LEVEL)
    dataset = str(defended["dataset"])
    margin = f"{100 * AGREEMENT_MARGIN:g} pp"
    gaps = (f"{_pp(base['asr'] - h['asr_undefended'])} undefended, {_pp(defended['asr'] - h['asr_defended'])} "
            "defended")
    judged = {
        AGREES: f"this agrees with the paper (both our intervals lie within {margin} of the paper's values).",
        DISAGREES: f"this disagrees with the paper: an interval of ours lies {margin} or more from the paper's "
                   f"value ({gaps}).",
        INCONCLUSIVE: f"inconclusive: our intervals neither lie within {margin} of the paper's values nor exclude "
                      f"that range ({gaps}).",
    }[verdict]
    text = (f"{claim}: on {MNIST_DATASETS.get(dataset, dataset)} we measure {_pct(base['asr'])} "
            f"{_span(base['asr_low'], base['asr_high'])} -> {_pct(defended['asr'])} "
            f"({level_text()} interval {_span(defended['asr_low'], defended['asr_high'])}, "
            f"{int(defended['n_attacks'])} attacks x M = {int(defended['n_samples'])}) at a {_pct(drop.estimate)} "
            f"accuracy cost ({_span(drop.low, drop.high)}, {_how(drop)}): " + judged)
    return Finding("headline", verdict, text)


def table_agreement(comparison: pd.DataFrame) -> list[Finding]:
    """Per published table: each compared ASR value's verdict (:func:`analysis.verdicts.against_value`) and the
    table's (:func:`analysis.verdicts.combine`). Only rows :func:`analysis.paper.compare_with_paper` compared
    (the paper's model on the paper's dataset) count; a table none of whose rows is comparable gets one
    "not comparable here" line with the reason, never a verdict."""
    out = []
    for name, group in comparison[comparison["metric"] == "asr"].groupby("artefact", sort=True):
        title = f"Table {name.removeprefix('table')} ({group['attack'].iloc[0].upper()})"
        ran = group[(group["status"] == COMPARED) & ~group["ours"].isna()]
        if ran.empty:
            incomparable = group[group["status"] == NOT_COMPARABLE]
            if not incomparable.empty:
                reasons = "; ".join(dict.fromkeys(map(str, incomparable["reason"])))
                out.append(Finding(name, INFO, f"{title}: not comparable here ({reasons})."))
            continue
        verdicts = [v if isinstance(v, str) else INCONCLUSIVE for v in ran["verdict"]]
        counts = {v: verdicts.count(v) for v in (AGREES, DISAGREES, INCONCLUSIVE)}
        gap = float(ran["difference"].mean())
        out.append(Finding(name, combine(verdicts),
                           f"{title}: of {len(ran)} ASR values, {_n(counts[AGREES], 'agrees', 'agree')} with the "
                           f"paper (our {level_text()} interval within {100 * AGREEMENT_MARGIN:g} pp of it), "
                           f"{_n(counts[DISAGREES], 'disagrees', 'disagree')} and "
                           f"{_n(counts[INCONCLUSIVE], 'is inconclusive', 'are inconclusive')}; on average ours are "
                           f"{_pp(gap)} from the paper's."))
    return out


def trend(table: pd.DataFrame, images: ImageData | None = None) -> list[Finding]:
    """Does ASR fall as r' grows (the paper's Figure 3b)? The least-squares slope of ASR on r' per attack and
    model, with its interval (a contrast of the cells: paired over images or independent), against 0."""
    out = []
    paper = table[~is_adaptive(table) & (table["defense"] != "sap")]
    for (attack, r), group in paper.groupby(["attack", "train_dropout"], sort=True):
        group = group.sort_values("test_dropout").drop_duplicates("test_dropout")
        if len(group) < 3:
            continue
        x = group["test_dropout"].to_numpy(float)
        weights = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
        slope = contrast([asr_estimate(row) for _, row in group.iterrows()], weights, images, level=LEVEL)
        verdict = against_sign(slope.low, slope.high, -1)
        y = group["asr"].to_numpy(float)
        rho = pd.Series(x).corr(pd.Series(y), method="spearman") if np.unique(y).size > 1 else math.nan
        what = {AGREES: "falls as r' grows, as the paper says",
                DISAGREES: "does not fall as r' grows, unlike the paper",
                INCONCLUSIVE: "is not shown to fall or rise as r' grows"}[verdict]
        out.append(Finding(f"trend-{attack}-{r:g}", verdict,
                           f"{attack.upper()} on r = {r:g}: ASR {what}: slope {_pp(slope.estimate)} per unit "
                           f"r' ({level_text()} interval {_span(slope.low, slope.high, 'pp')}, {_how(slope)}; "
                           f"Spearman rho = {'n/a' if math.isnan(rho) else f'{rho:.2f}'}), from "
                           f"{_pct(group['asr'].iloc[0])} at r' = {x[0]:g} to "
                           f"{_pct(group['asr'].iloc[-1])} at r' = {x[-1]:g}."))
    return out


def believed_vs_measured(table: pd.DataFrame, images: ImageData | None = None) -> list[Finding]:
    """Where the C&W attacker's own success test accepted clearly more than succeeds under fresh defender samples.

    Written only where the interval of (believed - measured) lies above 0. ``asr_believed`` has no interval in
    the table; its standard error is bounded by ``sqrt(b (1 - b) / N images)`` (the largest variance of per-image
    shares with mean b), and the two are combined as if independent.
    """
    out = []
    rows = table[~is_adaptive(table) & (table["defense"] == "dropout") & (table["attack"] == "cw")
                 & (table["test_dropout"] > 0)]
    if rows.empty or "asr_believed" not in rows:
        return out
    for r, group in rows.groupby("train_dropout", sort=True):
        shown = []
        for _, row in group.sort_values("test_dropout").iterrows():
            b = float(row["asr_believed"])
            n = float(row["n_images"]) if "n_images" in row and pd.notna(row["n_images"]) else math.nan
            if math.isnan(b) or not n > 0:
                continue
            believed = Estimate(b, math.sqrt(b * (1 - b) / n))
            gap = difference(believed, asr_estimate(row), images, level=LEVEL)
            if gap.known and gap.low > 0:
                shown.append((row, gap))
        if not shown:
            continue
        row, gap = max(shown, key=lambda t: t[1].estimate)
        rates = ", ".join(f"{float(rw['test_dropout']):g}" for rw, _ in shown)
        out.append(Finding(f"believed-{r:g}", INFO,
                           f"C&W on r = {r:g}: at r' = {rates} the attacker's own success test (one sampled "
                           f"sub-network, the paper's attacker) accepted clearly more of its examples than succeed "
                           f"under fresh defender samples; the largest gap is at r' = {float(row['test_dropout']):g}: "
                           f"believed {_pct(row['asr_believed'])}, measured {_pct(row['asr'])} (difference "
                           f"{_pp(gap.estimate)}, {level_text()} interval {_span(gap.low, gap.high, 'pp')}). "
                           f"The paper does not say how its attacker judged success."))
    return out


def adaptive_effect(table: pd.DataFrame, chosen_rate: dict[float, float] | None = None,
                    images: ImageData | None = None) -> list[Finding]:
    """At the defender's chosen r' (Algorithm 1, per model) or every r' > 0: the designated adaptive attacker's
    ASR minus the paper attacker's on the same defender, against :data:`analysis.verdicts.ADAPTIVE_RISE_MARGIN`."""
    out = []
    adaptive = table[is_adaptive(table) & (table["defense"] != "sap")]
    for (attack, r), group in adaptive.groupby(["attack", "train_dropout"], sort=True):
        picked = chosen_rate.get(r) if chosen_rate else None
        # Algorithm 1 may keep r' = 0 (no defense within epsilon); then show every defended rate instead.
        rates = [picked] if picked else sorted({float(x) for x in group["test_dropout"] if x > 0})
        for r_test in rates:
            strong = designated_cell(group[np.isclose(group["test_dropout"], r_test)])
            weak = paper_cell(table, attack, r, r_test)
            if strong is None or weak is None:
                continue
            rise = difference(asr_estimate(strong), asr_estimate(weak), images, level=LEVEL)
            verdict = below_margin(rise.low, rise.high)
            margin = f"{100 * ADAPTIVE_RISE_MARGIN:g} pp"
            said = {AGREES: f"The defense holds up against this attacker: the interval excludes a rise of {margin} "
                            "or more.",
                    DISAGREES: f"The defense's reported strength does not survive this attacker: the rise exceeds "
                               f"{margin}.",
                    INCONCLUSIVE: f"Inconclusive: the interval neither excludes a rise of {margin} nor shows one."}
            out.append(Finding(f"adaptive-{attack}-{r:g}-{r_test:g}", verdict,
                               f"Adaptive {attack.upper()} ({strong['attacker']}, the designated adaptive attacker) "
                               f"against r = {r:g}, r' = {r_test:g}: ASR {_pct(weak['asr'])} -> {_pct(strong['asr'])} "
                               f"(rise {_pp(rise.estimate)}, {level_text()} interval "
                               f"{_span(rise.low, rise.high, 'pp')}, "
                               f"{_how(rise)}). " + said[verdict]))
    return out


def sap_vs_dropout(table: pd.DataFrame, images: ImageData | None = None) -> list[Finding]:
    """SAP against the dropout rate of closest clean accuracy, per attack and model (paper: dropout lets less
    through): the interval of SAP's ASR minus dropout's, against 0."""
    out = []
    paper = table[~is_adaptive(table)]
    for (attack, r), group in paper.groupby(["attack", "train_dropout"], sort=True):
        sap = group[group["defense"] == "sap"]
        drop = group[group["defense"] == "dropout"]
        if sap.empty or drop.empty:
            continue
        s = sap.iloc[0]
        d = drop.iloc[(drop["clean_accuracy"] - s["clean_accuracy"]).abs().argsort().iloc[0]]
        gap = difference(asr_estimate(s), asr_estimate(d), images, level=LEVEL)
        verdict = against_sign(gap.low, gap.high, +1)
        said = {AGREES: "dropout is the stronger defense, as the paper says.",
                DISAGREES: "SAP does at least as well here, unlike the paper.",
                INCONCLUSIVE: "which is stronger is not shown at this sample size."}[verdict]
        out.append(Finding(f"sap-{attack}-{r:g}", verdict,
                           f"{attack.upper()} on r = {r:g}: SAP lets {_pct(s['asr'])} through at "
                           f"{_pct(s['clean_accuracy'])} accuracy; dropout at r' = {d['test_dropout']:g} (the closest "
                           f"accuracy, {_pct(d['clean_accuracy'])}) lets {_pct(d['asr'])} through; SAP minus dropout "
                           f"{_pp(gap.estimate)} ({level_text()} interval {_span(gap.low, gap.high, 'pp')}, "
                           f"{_how(gap)}): {said}"))
    return out


def variance_finding(relation_row: pd.Series) -> Finding:
    """The gradient-variance relation's row (``analysis.gradvar.variance_asr_relation``) as a finding."""
    r = relation_row
    if int(r["n"]) < 3 or math.isnan(r["rho"]):
        return Finding("variance", INCONCLUSIVE,
                       f"Gradient variance against ASR: {int(r['n'])} defender strategies with distinct values are "
                       "too few for a rank correlation.")
    said = {AGREES: "larger variance goes with lower ASR, as the paper's explanation predicts",
            DISAGREES: "larger variance goes with higher ASR, against the paper's explanation",
            INCONCLUSIVE: "no relation is shown"}.get(r["verdict"], str(r["verdict"]))
    if r["verdict"] == INCONCLUSIVE and (r["rho_low"] > 0 or r["rho_high"] < 0):
        # The interval over images excludes 0, but the strategies are few: the permutation test decides.
        said = (f"the interval over images excludes 0, but with {int(r['n'])} strategies the permutation test does "
                f"not reject rho = 0 at the {level_text()} level, so no relation is shown")
    return Finding("variance", r["verdict"] if r["verdict"] in (AGREES, DISAGREES, INCONCLUSIVE) else INFO,
                   f"Across defender strategies, gradient variance and ASR have Spearman rho = {r['rho']:.2f} "
                   f"({level_text()} interval {r['rho_low']:.2f} to {r['rho_high']:.2f}, {r['interval']}; "
                   f"permutation p = {r['p_value']:.3f}, n = {int(r['n'])}): {said}.")


# --------------------------------------------------------------------------- the cited defenses
def _recipe_rows(joint: pd.DataFrame, recipe: str) -> pd.DataFrame:
    return joint[(joint["recipe"].astype(str) == recipe) & (joint["attack"] == "cw")
                 & joint["defense"].isin(["none", "dropout"])]


def _standard_rows(joint: pd.DataFrame, r: float) -> pd.DataFrame:
    from analysis.cited import is_standard

    return joint[np.array([is_standard(x) for x in joint["recipe"]]) & (joint["attack"] == "cw")
                 & joint["defense"].isin(["none", "dropout"]) & np.isclose(joint["train_dropout"], r)]


def _at(rows: pd.DataFrame, attacker: str, r_test: float) -> pd.Series | None:
    hit = rows[(rows["attacker"] == attacker) & np.isclose(rows["test_dropout"], r_test)]
    return None if hit.empty else hit.iloc[0]


RECIPE_WORDS = {"adversarial": "adversarial training", "distillation": "defensive distillation"}


def cited_claim(joint: pd.DataFrame, images: ImageData | None = None) -> list[Finding]:
    """The paper's cited claim (sections 1, 3.3, 4.2, from Carlini & Wagner 2017): C&W succeeds 100% against
    distillation and adversarial training. Per recipe model, the paper's C&W attacker at r' = 0 against the cited
    value (:func:`analysis.verdicts.against_value`), with the L2 it needed beside the standard model's (same r)."""
    cited = paper_numbers()["cited_defenses"]
    out = []
    for recipe, value in cited["asr"].items():
        rows = _recipe_rows(joint, recipe)
        for model, group in rows.groupby("model", sort=False):
            plain = group[np.isclose(group["test_dropout"], 0.0) & ~is_adaptive(group)]
            if plain.empty:
                continue
            row = plain.iloc[0]
            verdict = against_value(float(row["asr_low"]), float(row["asr_high"]), float(value))
            base = _at(_standard_rows(joint, float(row["train_dropout"])), row["attacker"], 0.0)
            l2 = f"mean L2 {sig(row['l2_mean'])}" if pd.notna(row["l2_mean"]) else "no successful example"
            if base is not None and pd.notna(base["l2_mean"]):
                l2 += f" (the standard model {base['model_label']}: {sig(base['l2_mean'])})"
            margin = f"{100 * AGREEMENT_MARGIN:g} pp"
            said = {AGREES: f"agrees with the cited value (our interval lies within {margin} of it).",
                    DISAGREES: f"disagrees with the cited value (our interval lies {margin} or more from it).",
                    INCONCLUSIVE: f"inconclusive: our interval neither lies within {margin} of the cited value nor "
                                  "excludes that range."}[verdict]
            out.append(Finding(f"cited-{recipe}-{model[:8]}", verdict,
                               f"Cited: C&W against {RECIPE_WORDS.get(recipe, recipe)} ({row['model_label']}) "
                               f"succeeds {_paper_pct(value)} "
                               f"(the paper, from Carlini & Wagner 2017). Ours, the paper's C&W attacker at r' = 0: "
                               f"{_pct(row['asr'])} ({level_text()} interval {_span(row['asr_low'], row['asr_high'])}, "
                               f"{int(row['n_attacks'])} attacks), {l2}: " + said))
    return out


def dropout_on_adversarial_training(joint: pd.DataFrame, images: ImageData | None = None) -> list[Finding]:
    """Does test-time dropout on top of adversarial training beat either alone at equal accuracy cost?

    Per adversarially trained model, attacker (the paper's C&W attacker, and the designated adaptive one) and
    test rate r' > 0: the combination's ASR minus (a) the same model at r' = 0 and (b) the standard model of the
    same r under test-time dropout at the rate whose clean accuracy is closest to the combination's. Each
    difference's interval against 0 (:func:`analysis.verdicts.against_sign`, the combination predicted lower),
    the two combined (:func:`analysis.verdicts.combine`): *agrees* = it beats both, *disagrees* = an interval lies
    at or above 0, *inconclusive* otherwise. The accuracy gap between (b) and the combination is stated with its
    interval, since a grid of rates rarely gives equal accuracy exactly.
    """
    out = []
    for model, rows in _recipe_rows(joint, "adversarial").groupby("model", sort=False):
        r = float(rows["train_dropout"].iloc[0])
        standard = _standard_rows(joint, r)
        if standard.empty:
            continue
        paper = [a for a in dict.fromkeys(rows.loc[~is_adaptive(rows), "attacker"])][:1]
        adaptive_rows = rows[is_adaptive(rows)].drop_duplicates("attacker")
        chosen = designated_cell(adaptive_rows) if not adaptive_rows.empty else None
        attackers = [("the paper's attacker", a) for a in paper]
        if chosen is not None:
            attackers.append(("the designated adaptive attacker", chosen["attacker"]))
        for who, attacker in attackers:
            for r_test in sorted({float(x) for x in rows["test_dropout"] if x > 0}):
                combo, alone = _at(rows, attacker, r_test), _at(rows, attacker, 0.0)
                pool = standard[(standard["attacker"] == attacker) & (standard["test_dropout"] > 0)]
                if combo is None or alone is None or pool.empty:
                    continue
                drop = pool.iloc[(pool["clean_accuracy"] - combo["clean_accuracy"]).abs().argsort().iloc[0]]
                vs_alone = difference(asr_estimate(combo), asr_estimate(alone), images, level=LEVEL)
                vs_drop = difference(asr_estimate(combo), asr_estimate(drop), images, level=LEVEL)
                acc_gap = difference(accuracy_estimate(drop), accuracy_estimate(combo), images, level=LEVEL)
                parts = [against_sign(vs_alone.low, vs_alone.high, -1), against_sign(vs_drop.low, vs_drop.high, -1)]
                verdict = combine(parts)
                beaten = [name for name, v in zip(("adversarial training alone", "dropout alone"), parts)
                          if v == DISAGREES]
                said = {AGREES: "yes: the combination lets less through than either alone (both intervals below 0).",
                        DISAGREES: f"no: the combination does not beat {' or '.join(beaten)} (that interval lies at "
                                   "or above 0).",
                        INCONCLUSIVE: "not shown at this sample size: an interval straddles 0."}[verdict]
                out.append(Finding(
                    f"combo-{model[:8]}-{'adaptive' if 'adaptive' in who else 'paper'}-{r_test:g}", verdict,
                    f"Test-time dropout on adversarial training ({combo['model_label']}, r' = {r_test:g}), C&W by "
                    f"{who} ({attacker}): ASR {_pct(combo['asr'])} at {_pct(combo['clean_accuracy'])} clean accuracy; "
                    f"adversarial training alone (r' = 0) {_pct(alone['asr'])} at {_pct(alone['clean_accuracy'])}; "
                    f"dropout alone on {drop['model_label']} at r' = {float(drop['test_dropout']):g} (the closest "
                    f"clean accuracy, {_pct(drop['clean_accuracy'])}) {_pct(drop['asr'])}. Combination minus "
                    f"adversarial training alone {_pp(vs_alone.estimate)} {_span(vs_alone.low, vs_alone.high, 'pp')}, "
                    f"minus dropout alone {_pp(vs_drop.estimate)} {_span(vs_drop.low, vs_drop.high, 'pp')} "
                    f"({level_text()} intervals, {_how(vs_drop)}); clean accuracy of dropout alone minus the "
                    f"combination's {_pp(acc_gap.estimate)} {_span(acc_gap.low, acc_gap.high, 'pp')}: " + said))
    return out


def write_conclusions(table: pd.DataFrame, comparison: pd.DataFrame,
                      chosen_rate: dict[float, float] | None = None,
                      variance: Finding | None = None, images: ImageData | None = None) -> list[Finding]:
    """All findings in report order."""
    findings: list[Finding] = [headline(table, images)]
    findings += table_agreement(comparison)
    findings += trend(table, images)
    findings += sap_vs_dropout(table, images)
    findings += believed_vs_measured(table, images)
    findings += adaptive_effect(table, chosen_rate, images)
    if variance is not None:
        findings.append(variance)
    return findings


def summary_line(findings: list[Finding]) -> str:
    """One sentence: the verdicts against the paper, and against the adaptive attacker."""
    def counts(group: list[Finding]) -> dict[str, int]:
        return {v: sum(f.verdict == v for f in group) for v in (AGREES, DISAGREES, INCONCLUSIVE)}

    combos = [f for f in findings if f.verdict != INFO and f.topic.startswith("combo-")]
    findings = [f for f in findings if not f.topic.startswith("combo-")]
    paper = [f for f in findings if f.verdict != INFO and not f.topic.startswith("adaptive-")]
    adaptive = [f for f in findings if f.verdict != INFO and f.topic.startswith("adaptive-")]
    c = counts(paper)
    text = (f"Of {len(paper)} checks against the paper ({level_text()} intervals), {_n(c[AGREES], 'agrees', 'agree')}, "
            f"{_n(c[DISAGREES], 'disagrees', 'disagree')} and "
            f"{_n(c[INCONCLUSIVE], 'is inconclusive', 'are inconclusive')}.")
    if adaptive:
        a = counts(adaptive)
        text += (f" Against the designated adaptive attacker the defense holds up in {a[AGREES]} of {len(adaptive)} "
                 f"settings, does not survive in {a[DISAGREES]} and {_n(a[INCONCLUSIVE], 'is', 'are')} inconclusive "
                 f"(a rise of "
                 f"{100 * ADAPTIVE_RISE_MARGIN:g} pp or more counts).")
    if combos:
        c = counts(combos)
        text += (f" Test-time dropout on top of adversarial training beats both alone in {c[AGREES]} of {len(combos)} "
                 f"settings, does not in {c[DISAGREES]} and {_n(c[INCONCLUSIVE], 'is', 'are')} inconclusive.")
    return text
