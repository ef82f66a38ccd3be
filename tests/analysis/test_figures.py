"""The figures' structure and data: panels, shared axes and bins, reference lines, heatmap cells."""
from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.figures import (figure_accuracy_asr_l2_heatmaps, figure_gradient_densities, figure_statistic_vs_asr,
                              figure_statistics_vs_rate)
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


def test_heatmaps_hold_the_payoff_cells(payoff_table) -> None:
    figs = figure_accuracy_asr_l2_heatmaps(payoff_table)
    assert len(figs) == payoff_table["attacker"].nunique()
    fig = figs[0]
    acc, asr, l2 = fig.data
    assert list(asr.x) == ["0", "0.1", "0.3", "0.5", "0.7", "0.9", "sap[frac=1]"]
    assert list(asr.y) == ["0", "0.3", "0.5"]
    cw = payoff_table[payoff_table["attacker"] == "cw[kappa=0]"]
    cell = cw[(cw["train_dropout"] == 0.3) & (cw["test_dropout"] == 0.5)].iloc[0]
    assert asr.z[1][3] == pytest.approx(cell["asr"])
    assert acc.z[1][3] == pytest.approx(cell["clean_accuracy"])
    assert l2.z[1][3] == pytest.approx(cell["l2_mean"])
    assert asr.z[2][6] == pytest.approx(0.6)  # SAP column
    assert "[" in asr.text[1][3] and "attacks: 50" in asr.text[1][3]
    assert (asr.zmin, asr.zmax) == (0, 1)


def test_heatmaps_average_duplicate_cells_and_leave_gaps() -> None:
    payoff = make_payoff_table(train_rates=(0.3,), attackers=("cw",), sap=False)
    twin = payoff.copy()
    twin["asr"] = twin["asr"] - 0.2
    payoff = make_payoff_table(train_rates=(0.3, 0.7), attackers=("cw",), sap=False)
    payoff = payoff.drop(payoff.index[(payoff["train_dropout"] == 0.7) & (payoff["test_dropout"] == 0.9)])
    import pandas as pd
    fig = figure_accuracy_asr_l2_heatmaps(pd.concat([payoff, twin]))[0]
    asr = fig.data[1]
    assert asr.z[0][1] == pytest.approx(0.9 - 0.1)  # mean of 0.9 and 0.7
    assert "mean of 2 payoff rows" in asr.text[0][1]
    assert asr.z[1][5] is None  # the missing cell is a gap


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
    assert not any(isinstance(v, float) and math.isinf(v) for t in fig.data for v in t.x)
