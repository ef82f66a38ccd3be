"""The decision report of ``defdrop solve`` as one self-contained HTML page (plotly.js embedded once, offline).

Sections: the recommendation and why; the payoff matrix as a heatmap (cell text ``asr [low, high]``, defender
rows outside the accuracy constraint marked); accuracy and worst-case ASR against r' with Algorithm 1's walk;
each solver's defender strategy side by side; the robustness counts and the spread of the worst-case ASR; then
the tables (defenders, Algorithm 1 per attacker, Nash equilibria) and notes.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.html import write_page
from analysis.solve_text import (
    budget_text,
    defender_rows,
    headline,
    interval,
    note_text,
    pct,
    reasons,
    regret_text,
    signed_points,
    utility,
)
from gameplay.solve import SolveReport
from payoffs.errors import DefdropError

# Above this many columns the heatmap shows its "asr [low, high]" text on hover only (it would not fit).
MAX_TEXT_COLUMNS = 12


_pct = pct


def figure_payoff_heatmap(report: SolveReport) -> go.Figure:
    """ASR of every cell, defenders (rows) x attackers (columns), with 95% intervals as cell text."""
    asr = np.asarray(report.asr)
    low, high = np.asarray(report.asr_low), np.asarray(report.asr_high)
    kept = set(report.game_rows)
    y = [d.label + ("" if i in kept else "  (drop > eps)") for i, d in enumerate(report.defenders)]
    x = [a.label + (" *" if a.adaptive else "") for a in report.attackers]
    def cell(a: float, lo: float, hi: float) -> str:
        known = math.isfinite(lo) and math.isfinite(hi)
        return f"{100 * a:.1f} " + (f"[{100 * lo:.1f}, {100 * hi:.1f}]" if known else "[unknown]")

    text = [[cell(asr[i, j], low[i, j], high[i, j]) for j in range(asr.shape[1])] for i in range(asr.shape[0])]
    acc = [[f"{pct(d.accuracy)} (drop {signed_points(d.accuracy_drop)})"] * asr.shape[1] for d in report.defenders]
    show_text = asr.shape[1] <= MAX_TEXT_COLUMNS
    fig = go.Figure(go.Heatmap(
        z=asr * 100, x=x, y=y, text=text, customdata=acc, colorscale="Reds", zmin=0, zmax=100,
        texttemplate="%{text}" if show_text else None, textfont={"size": 10},
        colorbar={"title": "ASR", "ticksuffix": "%", "dtick": 20},
        hovertemplate="defender %{y}<br>attacker %{x}<br>ASR %{text} %<br>clean accuracy %{customdata}"
                      "<extra></extra>"))
    m, n = asr.shape
    fig.update_layout(
        title=f"Attack success rate (%) [95% interval], {m} defender x {n} attacker strategies"
              + ("" if show_text else " (hover a cell for its interval)") + "; * = adaptive attacker",
        height=max(420, 26 * m + 260), margin={"l": 200, "b": 180},
        xaxis={"tickangle": -45, "side": "bottom"}, yaxis={"autorange": "reversed"})
    return fig


PERCENT_AXIS = {"range": [0, 102], "dtick": 10, "ticksuffix": "%"}
"""Every rate axis of the page: 0-100% (a little headroom for markers at 100%), a tick every 10 points."""


def figure_rate_curves(report: SolveReport) -> go.Figure:
    """Per model: clean accuracy and the worst attacker's ASR against r', the epsilon line, Algorithm 1's pick.

    Both are rates, so they share one 0-100% axis (two axes with their own auto-ranges made equal heights mean
    different numbers, and ticks such as 26.6...105.4%)."""
    fig = go.Figure()
    asr = np.asarray(report.asr)
    eps = report.params["max_accuracy_drop"]
    for ref in report.references:
        rows = sorted((i for i, d in enumerate(report.defenders) if d.model == ref.model and d.is_rate),
                      key=lambda i: report.defenders[i].test_dropout)
        if not rows:
            continue
        rates = [report.defenders[i].test_dropout for i in rows]
        name = ref.model_name if len(report.references) > 1 else ""
        chosen = [report.defenders[i] for i in rows]
        fig.add_trace(go.Scatter(x=rates, y=[100 * d.accuracy for d in chosen], mode="lines+markers",
                                 name=f"clean accuracy {name}".strip(),
                                 hovertemplate="r' = %{x}<br>clean accuracy %{y:.3g}%<extra></extra>",
                                 error_y={"type": "data", "symmetric": False,
                                          "array": [100 * (d.accuracy_high - d.accuracy) for d in chosen],
                                          "arrayminus": [100 * (d.accuracy - d.accuracy_low) for d in chosen]}))
        fig.add_trace(go.Scatter(x=rates, y=[100 * asr[i].max() for i in rows], mode="lines+markers",
                                 hovertemplate="r' = %{x}<br>worst attacker's ASR %{y:.3g}%<extra></extra>",
                                 line={"dash": "dot"}, name=f"worst attacker's ASR {name}".strip()))
        if eps is not None:
            fig.add_trace(go.Scatter(x=[min(rates), max(rates)], y=[100 * (ref.accuracy - eps)] * 2, mode="lines",
                                     line={"dash": "dash", "color": "gray"},
                                     name=f"a_max - epsilon {name}".strip()))
    a1 = report.algorithm1
    if a1 is not None:
        c = a1.choice
        fig.add_trace(go.Scatter(x=[c.rate], y=[100 * c.accuracy], mode="markers", name=f"Algorithm 1: r'={c.rate:g}",
                                 marker={"size": 14, "symbol": "star", "color": "green"}))
        if c.stopped_at is not None:
            fig.add_trace(go.Scatter(x=[c.stopped_at], y=[100 * c.stopped_accuracy], mode="markers",
                                     name=f"first violation: r'={c.stopped_at:g}",
                                     marker={"size": 12, "symbol": "x", "color": "red"}))
    fig.update_layout(title="Accuracy and the worst attacker's ASR against the test dropout rate r'", height=480,
                      xaxis={"title": "test dropout rate r'", "range": [-0.03, 1.03], "dtick": 0.1},
                      yaxis={"title": "clean accuracy / worst-case ASR (%)", **PERCENT_AXIS})
    return fig


def figure_strategies(report: SolveReport) -> go.Figure:
    """The defender's strategy according to each solver, over the game's defender strategies."""
    labels = list(report.game_defenders)
    fig = go.Figure()
    solutions = [("minimax", report.minimax), ("Stackelberg", report.stackelberg),
                 ("Nash (best for defender)", report.nash.best_for_defender() if report.nash else None)]
    for name, eq in solutions:
        if eq is not None:
            fig.add_trace(go.Bar(x=labels, y=[100 * p for p in eq.defender], name=name))
    if report.algorithm1 is not None and report.algorithm1.defender in labels:
        fig.add_trace(go.Bar(x=labels, y=[100.0 if lb == report.algorithm1.defender else 0.0 for lb in labels],
                             name="Algorithm 1"))
    if report.robustness is not None:
        mean = dict(report.robustness.minimax_weight)
        fig.add_trace(go.Bar(x=labels, y=[100 * mean.get(lb, 0.0) for lb in labels],
                             name="minimax, mean over resamples"))
    fig.update_traces(hovertemplate="%{x}<br>%{y:.3g}%<extra>%{fullData.name}</extra>")
    fig.update_layout(barmode="group", title="Defender's probability of each strategy, by solver", height=440,
                      yaxis={"title": "probability (%)", **PERCENT_AXIS}, xaxis={"tickangle": -45})
    return fig


def figure_robustness(report: SolveReport) -> go.Figure:
    """How often each strategy is the choice across resamples, and the spread of the worst-case ASR."""
    rb = report.robustness
    fig = make_subplots(rows=1, cols=2, subplot_titles=("share of resamples choosing each strategy",
                                                        "worst-case ASR of the minimax mix over resamples"))
    top = rb.minimax_choice
    fig.add_trace(go.Bar(x=[lb for lb, _ in top], y=[100 * c / max(rb.solved, 1) for _, c in top],
                         name="minimax's largest weight"), row=1, col=1)
    if rb.algorithm1_choice:
        fig.add_trace(go.Bar(x=[lb for lb, _ in rb.algorithm1_choice],
                             y=[100 * c / rb.samples for _, c in rb.algorithm1_choice], name="Algorithm 1's rate"),
                      row=1, col=1)
    fig.add_trace(go.Histogram(x=[100 * v for v in rb.worst_asr], nbinsx=30, name="worst-case ASR %"), row=1, col=2)
    fig.add_vline(x=100 * report.recommendation.worst_case_asr, line_dash="dash", line_color="black", row=1, col=2)
    fig.update_layout(title=f"Robustness: {rb.samples} resampled payoff tables (seed {rb.seed})", height=440,
                      barmode="group")
    fig.update_yaxes(title_text="share of resamples (%)", row=1, col=1, **PERCENT_AXIS)
    fig.update_xaxes(title_text="worst-case ASR (%)", row=1, col=2, ticksuffix="%")
    fig.update_yaxes(title_text="resamples", row=1, col=2)
    return fig


def _defender_frame(report: SolveReport) -> pd.DataFrame:
    """One row per defender strategy, as text written the markdown's way (the training rate r only where some
    model has one)."""
    header, rows = defender_rows(report, detail=True)
    return pd.DataFrame(rows, columns=header)


def _solver_frame(report: SolveReport) -> pd.DataFrame:
    """Each solver's defender strategy, its worst case, value and regret, as text."""
    rows = []
    for name, eq in (("minimax", report.minimax), ("Stackelberg", report.stackelberg)):
        if eq is not None:
            worst, att = report.worst_case(eq)
            rows.append([name, ", ".join(f"{k} {pct(v)}" for k, v in report.mix(eq).items()), pct(worst), att,
                         utility(eq.defender_value), regret_text(eq.regret)])
    if report.nash is not None:
        for k, eq in enumerate(sorted(report.nash.equilibria, key=lambda e: -e.defender_value)[:10]):
            worst, att = report.worst_case(eq)
            rows.append([f"Nash #{k + 1}", ", ".join(f"{a} {pct(v)}" for a, v in report.mix(eq).items()), pct(worst),
                         att, utility(eq.defender_value), regret_text(eq.regret)])
    if report.algorithm1 is not None and report.algorithm1.worst is not None:
        w = report.algorithm1.worst
        rows.append(["Algorithm 1", report.algorithm1.defender or "r'=0", pct(w.asr), w.attacker, "-", "-"])
    return pd.DataFrame(rows, columns=["solver", "defender strategy", "worst-case ASR", "worst attacker",
                                       "defender's value (points)", "regret"])


def _picked(params: dict) -> str:
    """`` (model r=0.3, game cw-eot)`` where the game was picked out of a larger table."""
    picked = ", ".join(f"{k} {params[k]}" for k in ("model", "game") if params.get(k))
    return f" ({picked})" if picked else ""


def report_blocks(report: SolveReport) -> list:
    """The page's blocks in order (text, figures, tables), for :func:`analysis.html.write_page`."""
    rec = report.recommendation
    p = report.params
    eps = p["max_accuracy_drop"]
    blocks: list = [
        f"Input `{report.source}`{_picked(p)}: {len(report.defenders)} defender x {len(report.attackers)} "
        "attacker strategies; "
        f"game of {len(report.game_rows)} x {len(report.attackers)}, **{report.kind}** (mu = {p['mu']:g}, "
        f"lambda = {p['lam']:g}), "
        + f"{budget_text(rec)}" + (f" (epsilon = {eps:g})." if eps is not None else "."),
        "## Recommendation",
        f"**{headline(rec)}** ({rec.solver}): worst-case expected ASR {_pct(rec.worst_case_asr)} "
        f"({rec.worst_attacker}).",
        "\n".join(f"- {line}" for line in reasons(report)),
        "## Payoff matrix",
        figure_payoff_heatmap(report),
        "## Accuracy, ASR and Algorithm 1 against r'",
        figure_rate_curves(report),
        "## Each solver's answer",
        figure_strategies(report),
        _solver_frame(report),
    ]
    if report.nash is not None and report.nash.degenerate:
        blocks.append("The game is **degenerate**: " + "; ".join(report.nash.degeneracy)
                      + ". Its equilibria may form continua; the list shows points of them.")
    if report.robustness is not None and report.robustness.solved:
        q = report.robustness.quantiles("worst_asr")
        blocks += ["## Robustness", figure_robustness(report),
                   "Worst-case ASR quantiles 5/25/50/75/95%: " + " / ".join(_pct(v) for v in q.values())
                   + " (a maximum over noisy columns: resampling biases it upward)."]
    blocks += ["## Defender strategies", _defender_frame(report)]
    if report.algorithm1 is not None:
        a1 = report.algorithm1
        blocks += [f"## Algorithm 1 per attacker (r' = {a1.choice.rate:g})",
                   pd.DataFrame([[r.attacker, f"{r.rate:g}", pct(r.asr), interval(r.asr_low, r.asr_high)]
                                 for r in a1.rows],
                                columns=["attacker", "test dropout r'", "ASR", "95% interval"])]
    if report.notes:
        blocks += ["## Notes", "\n".join(f"- {note_text(n)}" for n in report.notes)]
    blocks.append("Seconds: " + ", ".join(f"{k} {s:.2f}" for k, s in report.seconds))
    return blocks


def write_solve_report_html(report: SolveReport, path: str | Path, *, plotly: str = "inline", png: bool = False,
                            log: Callable[[str], None] | None = None) -> Path:
    """Write the decision report page to ``path`` (atomically, folders created); returns the path. ``plotly``,
    ``png``, ``log``: as :func:`analysis.html.write_page`."""
    try:
        return write_page(path, f"defdrop solve: {Path(report.source).name}", report_blocks(report), plotly=plotly,
                          png=png, log=log)
    except OSError as exc:
        raise DefdropError(f"cannot write the report {path}: {exc.strerror or exc}") from None
