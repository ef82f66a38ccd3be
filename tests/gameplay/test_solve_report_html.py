"""The HTML decision report: one self-contained page, plotly.js embedded once, every figure drawn offline."""
from __future__ import annotations

import re

import pytest

from analysis.solve_report import write_solve_report_html
from analysis.solve_text import headline
from gameplay.solve import solve_payoff_csv


@pytest.fixture(scope="module")
def page(small_table, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    csv = folder / "payoff.csv"
    small_table.to_csv(csv, index=False)
    report = solve_payoff_csv(csv, max_accuracy_drop=0.02, robustness_samples=20)
    return write_solve_report_html(report, folder / "out" / "report.html"), report


def test_page_is_self_contained(page):
    path, report = page
    text = path.read_text(encoding="utf-8")
    assert text.count("* plotly.js v") == 1  # the library's banner: embedded exactly once
    assert not re.search(r"<script[^>]+src=", text)  # no CDN, nothing fetched
    assert text.count("Plotly.newPlot") == 4  # heatmap, rate curves, strategies, robustness
    assert headline(report.recommendation).split(":")[0] in text
    # The heatmap's cell text: "asr [low, high]" in percent.
    asr, low, high = report.asr[0][0], report.asr_low[0][0], report.asr_high[0][0]
    assert f"{100 * asr:.1f} [{100 * low:.1f}, {100 * high:.1f}]" in text


def test_page_renders_offline_in_chromium(page):
    from tests.browser import chromium_or_skip, render_in_chromium

    chromium = chromium_or_skip()
    result = render_in_chromium(page[0], chromium=chromium)
    assert result.plotly_loaded and not result.errors and not result.external_requests
    assert result.plot_count == 4 and result.rendered_count == 4


def test_rate_curves_share_one_percent_axis_with_round_ticks(page):
    """Accuracy and worst-case ASR are both rates: one 0-100% axis, a tick every 10 points (not 26.6...105.4%)."""
    from analysis.solve_report import figure_rate_curves

    _, report = page
    fig = figure_rate_curves(report)
    layout = fig.to_dict()["layout"]
    assert "yaxis2" not in layout  # no second axis with its own auto-range
    assert layout["yaxis"]["range"][0] == 0 and 100 <= layout["yaxis"]["range"][1] <= 105
    assert layout["yaxis"]["dtick"] == 10 and layout["yaxis"]["ticksuffix"] == "%"
    accuracy = next(t for t in fig.data if t.name.startswith("clean accuracy"))
    rated = sorted((d for d in report.defenders if d.is_rate), key=lambda d: d.test_dropout)
    assert list(accuracy.y) == pytest.approx([100 * d.accuracy for d in rated])
    assert all(0 <= y <= 100 for t in fig.data for y in t.y)


def test_strategy_and_robustness_figures_are_in_percent(page):
    from analysis.solve_report import figure_robustness, figure_strategies

    _, report = page
    bars = figure_strategies(report)
    minimax = next(t for t in bars.data if t.name == "minimax")
    assert list(minimax.y) == pytest.approx([100 * p for p in report.minimax.defender])
    assert bars.layout.yaxis.ticksuffix == "%" and bars.layout.yaxis.range[1] >= 100
    robust = figure_robustness(report)
    assert max(robust.data[0].y) <= 100 and sum(robust.data[0].y) == pytest.approx(100)
