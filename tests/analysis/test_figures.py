"""The figures' structure and data: panels, shared axes and bins, reference lines, heatmap cells."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.figures import (
    figure_accuracy_asr_l2_heatmaps,
    figure_gradient_densities,
    figure_statistic_vs_asr,
    figure_statistics_vs_rate,
    nice_ceiling,
)
from analysis.gradvar import GradVarResult, variance_asr_relation
from payoffs.errors import DefdropError
from tests.analysis.conftest import make_payoff_table


def test_figure4_has_one_panel_per_defender_with_shared_axes_and_bins(gradvar_small: GradVarResult) -> None:
    fig = figure_gradient_densities(gradvar_small, image=1)
    k, d = len(gradvar_small.labels), gradvar_small.dims.shape[1]
    hists = [t for t in fig.data if t.type == "histogram"]
    curves = [t for t in fig.data if t.type == "scatter"]
    assert len(hists) == k * d
    # Every random defender gets a density curve per dim; the deterministic 'none' panel gets none.
    assert len(curves) == (k - 1) * d
    assert {t.xaxis for t in hists} == {"x"} | {f"x{i}" for i in range(2, k + 1)}
    # Shared axes: all x axes are one (each matches the same anchor axis), likewise y; one set of bins for all.
    layout = fig.layout
    for letter in "xy":
        names = [f"{letter}{i if i > 1 else ''}" for i in range(1, k + 1)]
        roots = {layout[f"{letter}axis{n[1:]}"].matches or n for n in names}
        assert len(roots) == 1 and roots <= set(names)
    assert len({(t.xbins.start, t.xbins.end, t.xbins.size) for t in hists}) == 1
    # The histograms hold the sampled values of input 1, panel by panel, dim by dim.
    assert np.array_equal(np.asarray(hists[d + 2].x), gradvar_small.values[1, 1, :, 2])
    assert hists[0].name == gradvar_small.dim_name(gradvar_small.dims[1, 0])
    assert [a.text.split("  ")[0] for a in layout.annotations] == list(gradvar_small.labels)
    # y range covers the tallest histogram bar and density curve.
    top = max(max(c.y) for c in curves)
    assert layout.yaxis.range[1] >= top


def test_statistics_vs_rate_draws_dropout_curves_and_sap_references(gradvar_small: GradVarResult) -> None:
    fig = figure_statistics_vs_rate(gradvar_small)
    names = {t.name for t in fig.data if t.showlegend}
    assert "dropout, D chosen dims" in names and "dropout, all dims" in names
    assert "sap[frac=1], D chosen dims" in names and "sap[frac=1], all dims" in names
    curve = next(t for t in fig.data if t.name == "dropout, all dims" and t.xaxis == "x")
    table = gradvar_small.table
    drop = table[table["defense"] != "sap"].sort_values("test_dropout")
    assert list(curve.x) == list(drop["test_dropout"])
    assert curve.y[1] == pytest.approx(drop["var_all"].iloc[1])
    sap_line = next(t for t in fig.data if t.name == "sap[frac=1], all dims" and t.xaxis == "x")
    assert sap_line.y[0] == pytest.approx(table.set_index("defender").loc["sap[frac=1]", "var_all"])
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis3.type != "log"


def _traces(fig, metric):
    return [t for t in fig.data if t.name == metric]


def test_heatmaps_hold_the_payoff_cells_in_percent(payoff_table) -> None:
    figs = figure_accuracy_asr_l2_heatmaps(payoff_table)
    assert len(figs) == payoff_table["attacker"].nunique()
    fig = figs[0]
    (acc, _), (asr, asr_sap), (l2, _) = (_traces(fig, m) for m in ("clean_accuracy", "asr", "l2_mean"))
    assert list(asr.x) == ["0", "0.1", "0.3", "0.5", "0.7", "0.9"]
    assert list(asr.y) == ["0", "0.3", "0.5"]
    cw = payoff_table[payoff_table["attacker"] == "cw[kappa=0]"]
    cell = cw[(cw["train_dropout"] == 0.3) & (cw["test_dropout"] == 0.5)].iloc[0]
    # Rates in percent (ASR and accuracy alike), L2 as measured.
    assert asr.z[1][3] == pytest.approx(100 * cell["asr"])
    assert acc.z[1][3] == pytest.approx(100 * cell["clean_accuracy"])
    assert l2.z[1][3] == pytest.approx(cell["l2_mean"])
    assert asr.text[1][3] == "50%" and acc.text[1][3] == "93.7%"
    assert asr_sap.z[2][0] == pytest.approx(60.0)  # SAP column
    assert "[46%, 54%]" in asr.customdata[1][3] and "attacks: 50" in asr.customdata[1][3]


def test_rate_heatmaps_share_one_fixed_scale_and_l2_a_documented_one(payoff_table) -> None:
    """86.5% and 90.9% accuracy must not be drawn as opposite ends of a colour scale: 0-100% in every figure."""
    narrow = payoff_table.copy()
    narrow["clean_accuracy"] = 0.865 + (narrow["test_dropout"].fillna(0.5) * 0.088)
    for fig in figure_accuracy_asr_l2_heatmaps(narrow):
        layout = fig.layout
        for axis, metric in ((layout.coloraxis, "clean_accuracy"), (layout.coloraxis2, "asr")):
            assert (axis.cmin, axis.cmax) == (0, 100) and axis.colorbar.ticksuffix == "%"
            assert {t.coloraxis for t in _traces(fig, metric)} == {"coloraxis" if metric != "asr" else "coloraxis2"}
        # L2: 0 to the table's largest mean L2 (1.9) rounded up, the same for every attacker's figure.
        assert (layout.coloraxis3.cmin, layout.coloraxis3.cmax) == (0, 2.0)
        assert all(t.zmin is None and t.zmax is None for t in fig.data)  # no per-trace auto-scale


def test_nice_ceiling() -> None:
    assert [nice_ceiling(v) for v in (1.9, 2.0, 2.37, 0.4, 0.41, 13.0, 0.0, math.nan)] == \
        [2.0, 2.0, 2.5, 0.4, 0.45, 15.0, 1.0, 1.0]


def test_missing_cells_are_labelled_not_blank() -> None:
    payoff = make_payoff_table(train_rates=(0.3, 0.7), attackers=("cw",), sap=False)
    payoff = payoff.drop(payoff.index[(payoff["train_dropout"] == 0.7) & (payoff["test_dropout"] == 0.9)])
    payoff.loc[(payoff["train_dropout"] == 0.3) & (payoff["test_dropout"] == 0.5), "l2_mean"] = math.nan
    fig = figure_accuracy_asr_l2_heatmaps(payoff)[0]
    (acc,), (asr,), (l2,) = (_traces(fig, m) for m in ("clean_accuracy", "asr", "l2_mean"))
    assert asr.z[1][5] is None and acc.z[1][5] is None and l2.z[1][5] is None  # a gap ...
    for trace, metric in ((acc, "clean_accuracy"), (asr, "asr"), (l2, "l2_mean")):
        (label,) = _traces(fig, f"{metric}: no value")  # ... that says why, in the cell, on the same axes
        assert (label.mode, label.xaxis, label.yaxis) == ("text", trace.xaxis, trace.yaxis)
        assert ("0.9", "0.7", "not run") in zip(label.x, label.y, label.text)
        assert "not run" in label.customdata[list(label.x).index("0.9")]
    (l2_label,) = _traces(fig, "l2_mean: no value")
    assert l2.z[0][3] is None  # every attack failed: no L2 to average
    assert list(zip(l2_label.x, l2_label.y, l2_label.text)) == [("0.5", "0.3", "no success"), ("0.9", "0.7", "not run")]
    assert asr.texttemplate == "%{text}" and all(t for row in asr.text[:1] for t in row)


def test_a_panel_without_any_value_still_shows_its_cells(payoff_table) -> None:
    """SAP's L2 is undefined when every attack on it failed: plotly would draw nothing for an all-gap heatmap."""
    payoff = payoff_table.copy()
    payoff.loc[payoff["defense"] == "sap", "l2_mean"] = math.nan
    fig = figure_accuracy_asr_l2_heatmaps(payoff)[0]
    _, sap_l2 = _traces(fig, "l2_mean")
    (label,) = [t for t in _traces(fig, "l2_mean: no value") if t.xaxis == sap_l2.xaxis]
    assert list(label.text) == ["no success"] * 3
    axis = fig.layout[f"xaxis{sap_l2.xaxis[1:]}"]
    assert list(axis.categoryarray) == ["sap[frac=1]"]


def test_defenders_without_a_rate_sit_on_their_own_axis_group(payoff_table) -> None:
    payoff = payoff_table.copy()
    extra = payoff[payoff["defense"] == "sap"].copy()
    extra["defense"], extra["defender"] = "gauss", "gauss[sigma=0.1]"
    extra["test_dropout"] = 0.3  # a rate that is not a dropout rate must not land on the r' axis either
    fig = figure_accuracy_asr_l2_heatmaps(pd.concat([payoff, extra], ignore_index=True))[0]
    rate, other = _traces(fig, "asr")
    assert all(float(x) >= 0 for x in rate.x)  # only numeric r' values on the r' axis
    assert list(other.x) == ["gauss[sigma=0.1]", "sap[frac=1]"]
    assert rate.xaxis != other.xaxis
    layout = fig.layout
    rate_axis = layout[f"xaxis{rate.xaxis[1:]}"]
    other_axis = layout[f"xaxis{other.xaxis[1:]}"]
    assert rate_axis.title.text == "test dropout r'" and other_axis.title.text == "other defenders"
    assert rate_axis.domain[1] < other_axis.domain[0]  # side by side, not overlapping
    assert other.z[1][1] == pytest.approx(60.0)


def test_multi_model_defender_labels_lose_their_model_prefix(payoff_table) -> None:
    payoff = payoff_table.copy()
    payoff["model_label"] = [f"r={r:g}" for r in payoff["train_dropout"]]
    payoff["defender"] = [f"{m}/{d}" for m, d in zip(payoff["model_label"], payoff["defender"])]
    rate, other = _traces(figure_accuracy_asr_l2_heatmaps(payoff)[0], "asr")
    assert list(other.x) == ["sap[frac=1]"] and len(rate.x) == 6


def test_heatmaps_average_duplicate_cells() -> None:
    payoff = make_payoff_table(train_rates=(0.3,), attackers=("cw",), sap=False)
    twin = payoff.copy()
    twin["asr"] = twin["asr"] - 0.2
    fig = figure_accuracy_asr_l2_heatmaps(pd.concat([payoff, twin]))[0]
    (asr,) = _traces(fig, "asr")
    assert asr.z[0][1] == pytest.approx(100 * (0.9 - 0.1))  # mean of 0.9 and 0.7
    assert "mean of 2 payoff rows" in asr.customdata[0][1]


def test_heatmaps_need_the_schema(payoff_table) -> None:
    with pytest.raises(DefdropError, match="lacks column"):
        figure_accuracy_asr_l2_heatmaps(payoff_table.drop(columns=["l2_mean"]))


def test_statistic_vs_asr_has_a_panel_per_statistic(gradvar_small: GradVarResult) -> None:
    payoff = make_payoff_table(train_rates=(0.3,), test_rates=(0.1, 0.5, 0.9))
    payoff["model"] = gradvar_small.model
    rel = variance_asr_relation(gradvar_small.table, payoff)
    fig = figure_statistic_vs_asr(rel)
    assert len(fig.data) == len(rel.statistics) * payoff["attacker"].nunique()
    assert all(len(t.x) == 5 for t in fig.data)
    # ASR in percent, on the same fixed 0-100% range as every other rate.
    first = fig.data[0]
    points = rel.points[rel.points["attacker"] == first.name]
    assert list(first.y) == pytest.approx(list(100 * points["asr"]))
    assert fig.layout.yaxis.ticksuffix == "%" and fig.layout.yaxis.range[0] < 0 < 100 < fig.layout.yaxis.range[1]
    assert not any(isinstance(v, float) and math.isinf(v) for t in fig.data for v in t.x)
