"""Every page kind (report, solve, gradvar, audit) in headless Chromium, network off: every figure drawn, no
console errors, with plotly.js embedded and with one ``plotly.min.js`` shared by the pages of a folder.

Skips only where Chromium is missing outside CI; in CI (env CI set) a missing Chromium fails.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from analysis.gradvar import GradVarResult
from analysis.gradvar_page import write_gradvar_html
from tests.analysis.conftest import make_payoff_table
from tests.analysis.test_audit_page import small_audit  # noqa: F401  (the audit fixture)
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


@pytest.fixture(scope="module")
def shared_folder(tmp_path_factory, gradvar_small: GradVarResult, small_audit) -> dict[str, tuple[Path, int]]:  # noqa: F811
    """One page of each kind in one folder, all loading the folder's one ``plotly.min.js``: name -> (page, plots)."""
    from analysis.audit_page import write_audit
    from analysis.figures import figure_accuracy_asr_l2_heatmaps
    from analysis.report import write_report
    from analysis.solve_report import figure_payoff_heatmap, write_solve_report_html
    from gameplay.solve import solve_payoff_csv
    from gameplay.synthetic import synthetic_payoff_table

    folder = tmp_path_factory.mktemp("shared")
    payoff = make_payoff_table(train_rates=(0.0, 0.3), test_rates=(0.1, 0.5, 0.9), attackers=("cw[kappa=0]",))
    payoff = payoff.drop(payoff.index[(payoff["train_dropout"] == 0.3) & (payoff["test_dropout"] == 0.9)])
    csv = folder / "game.csv"
    synthetic_payoff_table(8, 6, seed=3).to_csv(csv, index=False)
    solved = solve_payoff_csv(csv, max_accuracy_drop=0.02, robustness_samples=10)
    pages = {
        "gradvar": (write_gradvar_html(gradvar_small, folder / "gradvar.html", payoff_df=payoff, plotly="directory"),
                    3 + 1),
        "solve": (write_solve_report_html(solved, folder / "solve.html", plotly="directory"), 4),
        "audit": (write_audit(*small_audit, folder / "audit.html", plotly="directory")[0], 3),
        "report": (write_report(folder, "report", ["## Figures 3 and 5", *figure_accuracy_asr_l2_heatmaps(payoff),
                                                   figure_payoff_heatmap(solved)], png=False)[0], 2),
    }
    return pages


@pytest.mark.parametrize("kind", ["report", "solve", "gradvar", "audit"])
def test_every_page_kind_renders_from_the_shared_plotly_js(shared_folder, kind: str) -> None:
    chromium = chromium_or_skip()
    page, plots = shared_folder[kind]
    text = page.read_text(encoding="utf-8")
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in text and "plotly.js v" not in text
    assert (page.parent / "plotly.min.js").is_file()
    result = render_in_chromium(page, chromium=chromium)
    assert result.plotly_loaded  # from the shared file: the page holds no library of its own
    assert result.errors == (), result.errors
    assert result.external_requests == (), result.external_requests
    assert result.plot_count >= plots and result.rendered_count == result.plot_count, result.figures


def test_a_page_whose_shared_plotly_js_is_missing_is_caught(tmp_path: Path) -> None:
    """The shared-file check can fail: without the folder's plotly.min.js nothing draws and the load is reported."""
    import plotly.graph_objects as go

    from analysis.html import write_page

    chromium = chromium_or_skip()
    page = write_page(tmp_path / "p.html", "P", [go.Figure(go.Scatter(y=[1, 2]))], plotly="directory")
    (tmp_path / "plotly.min.js").unlink()
    result = render_in_chromium(page, chromium=chromium)
    assert not result.plotly_loaded and result.rendered_count == 0
    assert any(e.startswith("failed to load") and e.endswith("/plotly.min.js") for e in result.errors), result.errors
