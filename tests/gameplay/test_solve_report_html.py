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
