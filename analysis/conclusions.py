"""Conclusions written from the numbers: agreement with the paper, and what an adaptive attacker does.

Every sentence is computed from the payoff table and the comparison with the paper, so different numbers give
different conclusions (tested with doctored tables). Thresholds used for verdicts are module constants.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.paper import is_adaptive, paper_numbers

AGREE_PP = 5.0
"""A number 'agrees' with the paper when the paper's value is in our 95% interval or within this many points."""
BROKEN_PP = 10.0
"""The adaptive attacker 'breaks' the defense when it adds at least this many points of ASR at the chosen r'."""


@dataclass(frozen=True)
class Finding:
    topic: str
    verdict: str  # agrees | differs | holds | breaks | info
    text: str


def _pct(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _pp(v: float) -> str:
    return f"{100 * v:+.1f} pp"


def _nearest_model(table: pd.DataFrame, r: float) -> float | None:
    rates = sorted(table["train_dropout"].unique())
    return None if not rates else min(rates, key=lambda x: abs(x - r))


def _cell(table: pd.DataFrame, attack: str, r: float, r_test: float, adaptive: bool) -> pd.Series | None:
    rows = table[(table["attack"] == attack) & (is_adaptive(table) == adaptive)
                 & np.isclose(table["train_dropout"], r) & (table["defense"] != "sap")
                 & np.isclose(table["test_dropout"].fillna(-1), r_test)]
    return None if rows.empty else rows.iloc[0]


def headline(table: pd.DataFrame) -> Finding | None:
    """The paper's 100% -> 13.89% (C&W, MNIST, r = 0.3, r' = 0.5) against ours."""
    h = paper_numbers()["headline"]
    r = _nearest_model(table[table["attack"] == "cw"], h["train_dropout"])
    if r is None:
        return None
    base, defended = _cell(table, "cw", r, 0.0, False), _cell(table, "cw", r, h["test_dropout"], False)
    if base is None or defended is None:
        return None
    in_ci = defended["asr_low"] <= h["asr_defended"] <= defended["asr_high"]
    close = abs(defended["asr"] - h["asr_defended"]) * 100 <= AGREE_PP
    verdict = "agrees" if (in_ci or close) else "differs"
    acc_drop = base["clean_accuracy"] - defended["clean_accuracy"]
    text = (f"Headline (C&W, r = {r:g}, r' = {h['test_dropout']:g}): the paper reports ASR 100% -> 13.89% at a "
            f"{_pct(h['accuracy_drop'])} accuracy cost; we measure {_pct(base['asr'])} -> {_pct(defended['asr'])} "
            f"(95% CI {_pct(defended['asr_low'])}-{_pct(defended['asr_high'])}, {int(defended['n_attacks'])} attacks x "
            f"M = {int(defended['n_samples'])}) at a {_pct(acc_drop)} accuracy cost: "
            + ("this agrees with the paper." if verdict == "agrees"
               else f"this differs from the paper by {_pp(defended['asr'] - h['asr_defended'])}."))
    return Finding("headline", verdict, text)


def table_agreement(comparison: pd.DataFrame) -> list[Finding]:
    """Per published table: how many of its numbers we reproduce, and the mean gap."""
    out = []
    for name, group in comparison[comparison["metric"] == "asr"].groupby("artefact", sort=True):
        ran = group[~group["ours"].isna()]
        if ran.empty:
            continue
        within = int((ran["within_interval"] == True).sum())  # noqa: E712
        close = int(((ran["difference"].abs() * 100) <= AGREE_PP).sum())
        agree = int((ran["within_interval"].fillna(False) | ((ran["difference"].abs() * 100) <= AGREE_PP)).sum())
        gap = float(ran["difference"].mean())
        same_data = ran["paper_dataset"].iloc[0] == ran["our_dataset"].iloc[0].replace("-5k", "")
        # A CIFAR-10 table set beside an MNIST run is shown, but it is no test of agreement.
        verdict = ("agrees" if agree >= math.ceil(0.5 * len(ran)) else "differs") if same_data else "info"
        note = "" if same_data else f" (the paper's numbers are on {ran['paper_dataset'].iloc[0]}, ours on {ran['our_dataset'].iloc[0]})"
        out.append(Finding(name, verdict,
                           f"Table {name.removeprefix('table')} ({group['attack'].iloc[0].upper()}): {agree} of {len(ran)} ASR values agree "
                           f"with the paper ({within} inside our 95% interval, {close} within {AGREE_PP:g} pp); on average "
                           f"ours are {_pp(gap)} from the paper's{note}."))
    return out


def trend(table: pd.DataFrame) -> list[Finding]:
    """Does ASR fall as r' grows (the paper's Figure 3b)? Spearman's rho per attack and model."""
    out = []
    paper = table[~is_adaptive(table) & (table["defense"] != "sap")]
    for (attack, r), group in paper.groupby(["attack", "train_dropout"], sort=True):
        if group["test_dropout"].nunique() < 3:
            continue
        rho = pd.Series(group["test_dropout"].to_numpy()).corr(pd.Series(group["asr"].to_numpy()), method="spearman")
        falls = rho < -0.5
        out.append(Finding(f"trend-{attack}-{r:g}", "agrees" if falls else "differs",
                           f"{attack.upper()} on r = {r:g}: ASR {'falls' if falls else 'does not fall steadily'} as r' grows "
                           f"(Spearman rho = {rho:.2f}; from {_pct(group.sort_values('test_dropout')['asr'].iloc[0])} at "
                           f"r' = {group['test_dropout'].min():g} to {_pct(group.sort_values('test_dropout')['asr'].iloc[-1])} "
                           f"at r' = {group['test_dropout'].max():g})."))
    return out


def believed_vs_measured(table: pd.DataFrame) -> list[Finding]:
    """How far the attacker's own success judgement is from success under fresh defender samples."""
    out = []
    rows = table[~is_adaptive(table) & (table["defense"] == "dropout") & (table["attack"] == "cw")]
    if not rows.empty:
        gap = rows["asr_believed"] - rows["asr"]
        worst = rows.loc[gap.idxmax()]
        out.append(Finding("believed", "info",
                           f"With the paper's single-sample success test the C&W attacker believes it succeeds far more "
                           f"often than its examples do under fresh dropout samples: at r = {worst['train_dropout']:g}, "
                           f"r' = {worst['test_dropout']:g} it believed {_pct(worst['asr_believed'])} but achieved "
                           f"{_pct(worst['asr'])}. Part of the paper's low ASR is this mismatch, not robustness."))
    return out


def adaptive_effect(table: pd.DataFrame, chosen_rate: dict[float, float] | None = None) -> list[Finding]:
    """At the defender's chosen r' (Algorithm 1, per model) or every r' > 0: adaptive ASR minus the paper's."""
    out = []
    adaptive = table[is_adaptive(table) & (table["defense"] != "sap")]
    for (attack, r), group in adaptive.groupby(["attack", "train_dropout"], sort=True):
        picked = chosen_rate.get(r) if chosen_rate else None
        # Algorithm 1 may keep r' = 0 (no defense within epsilon); then show every defended rate instead.
        rates = [picked] if picked else sorted(x for x in group["test_dropout"] if x > 0)
        for r_test in rates:
            strong = group[np.isclose(group["test_dropout"], r_test)]
            weak = _cell(table, attack, r, r_test, False)
            if strong.empty or weak is None:
                continue
            s = strong.sort_values("asr").iloc[-1]
            delta = s["asr"] - weak["asr"]
            broken = delta * 100 >= BROKEN_PP
            out.append(Finding(f"adaptive-{attack}-{r:g}-{r_test:g}", "breaks" if broken else "holds",
                               f"Adaptive {attack.upper()} ({s['attacker']}) against r = {r:g}, r' = {r_test:g}: ASR "
                               f"{_pct(weak['asr'])} -> {_pct(s['asr'])} ({_pp(delta)}; 95% CI {_pct(s['asr_low'])}-"
                               f"{_pct(s['asr_high'])}). "
                               + ("The defense's reported strength does not survive an adaptive attacker here."
                                  if broken else "The defense holds up against this adaptive attacker.")))
            if picked:
                break
    return out


def sap_vs_dropout(table: pd.DataFrame) -> list[Finding]:
    """SAP against the dropout rate of closest clean accuracy, per attack and model (paper: dropout wins)."""
    out = []
    paper = table[~is_adaptive(table)]
    for (attack, r), group in paper.groupby(["attack", "train_dropout"], sort=True):
        sap = group[group["defense"] == "sap"]
        drop = group[group["defense"] == "dropout"]
        if sap.empty or drop.empty:
            continue
        s = sap.iloc[0]
        d = drop.iloc[(drop["clean_accuracy"] - s["clean_accuracy"]).abs().argsort().iloc[0]]
        better = d["asr"] < s["asr"]
        out.append(Finding(f"sap-{attack}-{r:g}", "agrees" if better else "differs",
                           f"{attack.upper()} on r = {r:g}: SAP lets {_pct(s['asr'])} through at {_pct(s['clean_accuracy'])} "
                           f"accuracy; dropout at r' = {d['test_dropout']:g} ({_pct(d['clean_accuracy'])} accuracy) lets "
                           f"{_pct(d['asr'])} through - " + ("dropout is the stronger defense, as the paper says."
                                                            if better else "SAP does at least as well here, unlike the paper.")))
    return out


def write_conclusions(table: pd.DataFrame, comparison: pd.DataFrame,
                      chosen_rate: dict[float, float] | None = None,
                      variance_note: str | None = None) -> list[Finding]:
    """All findings in report order."""
    findings: list[Finding] = []
    h = headline(table)
    if h is not None:
        findings.append(h)
    findings += table_agreement(comparison)
    findings += trend(table)
    findings += sap_vs_dropout(table)
    findings += believed_vs_measured(table)
    findings += adaptive_effect(table, chosen_rate)
    if variance_note:
        findings.append(Finding("variance", "info", variance_note))
    return findings


def summary_line(findings: list[Finding]) -> str:
    """One sentence: how much agrees, and whether the adaptive attacker breaks the defense."""
    paper = [f for f in findings if f.verdict in ("agrees", "differs")]
    agree = sum(f.verdict == "agrees" for f in paper)
    adaptive = [f for f in findings if f.verdict in ("holds", "breaks")]
    broken = sum(f.verdict == "breaks" for f in adaptive)
    text = f"{agree} of {len(paper)} checks agree with the paper."
    if adaptive:
        text += (f" The adaptive attacker breaks the defense in {broken} of {len(adaptive)} settings."
                 if broken else f" The defense holds in all {len(adaptive)} adaptive settings tested.")
    return text
