"""The written gradvar page in headless Chromium, network off: every figure drawn, no console errors.

Skips only where Chromium is missing outside CI; in CI (env CI set) a missing Chromium fails.
"""
from __future__ import annotations

from pathlib import Path

from analysis.gradvar import GradVarResult
from analysis.gradvar_page import write_gradvar_html
from tests.analysis.conftest import make_payoff_table
from tests.browser import chromium_or_skip, render_in_chromium


def test_gradvar_page_renders_offline_without_errors(tmp_path: Path, gradvar_small: GradVarResult) -> None:
    chromium = chromium_or_skip()
    payoff = make_payoff_table(train_rates=(0.0, 0.3, 0.7), test_rates=(0.1, 0.5, 0.9),
                               attackers=("cw[kappa=0]", "fgsm[eps=0.3]"))
    path = write_gradvar_html(gradvar_small, tmp_path / "gradvar.html", payoff_df=payoff)
    # Figure 4, statistics vs r', statistics vs ASR, one heatmap figure per attacker.
    expected = 3 + payoff["attacker"].nunique()
    result = render_in_chromium(path, chromium=chromium)
    assert result.plotly_loaded
    assert result.errors == (), result.errors
    assert result.external_requests == (), result.external_requests
    assert result.plot_count == expected
    assert result.rendered_count == expected, result.figures
    assert all(f.main_svgs >= 2 for f in result.figures)


def test_probe_catches_errors_and_pages_that_need_the_network(tmp_path: Path) -> None:
    """The check can fail: a CDN-loaded plotly cannot load offline, and a throwing script is reported."""
    chromium = chromium_or_skip()
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><head><script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script></head><body>'
        '<div id="f" class="plotly-graph-div"></div>'
        '<script>Plotly.newPlot("f", [{"y": [1, 2]}]);</script>'
        '<script>console.error("boom");</script></body></html>', encoding="utf-8")
    result = render_in_chromium(page, chromium=chromium)
    assert not result.plotly_loaded
    assert result.plot_count == 1 and result.rendered_count == 0
    assert any("Plotly is not defined" in e for e in result.errors)
    assert any("console.error: boom" in e for e in result.errors)
    assert any(e.startswith("failed to load https://cdn.plot.ly") for e in result.errors)
    assert result.external_requests == ("https://cdn.plot.ly/plotly-2.35.2.min.js",)


def test_missing_chromium_fails_in_ci_and_skips_elsewhere(monkeypatch) -> None:
    import pytest

    import tests.browser as browser

    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the browser tests"):
        browser.chromium_or_skip()
    for value in ("", "0", "false"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.skip.Exception):
            browser.chromium_or_skip()
