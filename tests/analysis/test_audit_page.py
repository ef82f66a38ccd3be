"""The audit's page, JSON and words, from one small real audit; the backing sentences; the solve markdown/JSON with
the audit's verdicts beside the recommendation."""
from __future__ import annotations

import json

import pytest

from analysis import audit_page as ap
from gameplay import audit_backing as ab
from gameplay.audit_rules import decide, eot_step_saturated
from payoffs.audit.runner import audit_model
from payoffs.audit.settings import AuditSettings
from payoffs.data import Dataset
from payoffs.sources import TestSplit
from payoffs.strategy import AttackerStrategy, DefenderStrategy
from payoffs.training import TrainResult


@pytest.fixture(scope="module")
def small_audit(small_trained: TrainResult, mnist5k: Dataset):
    """Every check on 3 images, tiny attacks, the undefended model and r' = 0.5 (seconds)."""
    evidence = audit_model(small_trained.model, TestSplit(mnist5k.x_test, mnist5k.y_test, 10),
                           [DefenderStrategy("none"), DefenderStrategy.dropout(0.5)],
                           AttackerStrategy("cw", {"search_steps": 1, "iterations": 6}), saturated=eot_step_saturated,
                           settings=AuditSettings(n_images=3, eot_max=4, probe_images=5, eval_samples=4,
                                                  order_steps=3, unbounded_c=100.0),
                           identity="abc123", label="r=0.3", dataset="mnist-5k", data_name="mnist-5k")
    return evidence, decide(evidence)


def test_page_and_json_are_written_together(small_audit, tmp_path) -> None:
    evidence, verdict = small_audit
    html, js = ap.write_audit(evidence, verdict, tmp_path / "out" / "audit.html")
    assert js == tmp_path / "out" / "audit.json"
    page = html.read_text()
    assert page.count("Plotly.newPlot") >= 3  # the EOT curve and a loss curve per defender
    assert "EOT saturation" in page and "dropout[r&#x27;=0.5]" in page and "Runs (success" in page
    blob = json.loads(js.read_text())  # strict JSON: NaN written as null
    assert blob["summary"]["model"] == "abc123" and len(blob["verdicts"]) == 2
    assert ab.read_audit_json(js) == ab.audit_summary(evidence, verdict)
    costs = blob["verdicts"][1]["costs"]
    assert set(costs) == {str(n) for n in range(1, 8)} and costs["1"]["forwards"] > 0


def test_eot_axis_spans_the_measured_k(small_audit) -> None:
    """The k axis ends near the largest k measured (eot_max = 4), not at plotly's log-axis default."""
    import math

    evidence, verdict = small_audit
    low, high = ap.figure_eot_curve(evidence, verdict).layout.xaxis.range
    assert math.isclose(10 ** (high - ap.EOT_AXIS_PAD), 4) and math.isclose(10 ** (low + ap.EOT_AXIS_PAD), 1)


def test_words_follow_the_numbers(small_audit) -> None:
    evidence, verdict = small_audit
    lines = ap.summary_lines(evidence, verdict)
    assert lines[0].startswith("audit of cw[k=0,s=1,it=6] on r=0.3") and "3 attacks" in lines[0]
    assert any(line.startswith("none: ") and "EOT saturates at k = 1" in line for line in lines)
    none = evidence.defenders[0]
    assert "every k gives the same attack" in ap.eot_sentence(none)
    for number in range(1, 8):
        assert ap.check_sentence(number, evidence.defenders[1], evidence.settings)
    frame = ap.verdict_frame(evidence.defenders[1], verdict.defenders[1], evidence.settings)
    assert list(frame["check"]) == list(range(1, 9)) and frame["forwards"].iloc[-1] > 0


def _backing(status: str, **kw) -> ab.Backing:
    base = dict(defender="dropout[r'=0.5]", role="recommended", status=status, attack="cw", knee=8, eot_tried=16,
                table_eot=8)
    return ab.Backing(**{**base, **kw})


@pytest.mark.parametrize("status,kw,words", [
    (ab.BACKED, {}, "EOT saturates at k = 8; the table's cw attackers reach k = 8"),
    (ab.BELOW_KNEE, {"table_eot": 4}, "WARNING: EOT saturates at k = 8 but the table's cw attackers reach k = 4"),
    (ab.NO_KNEE, {"knee": None}, "EOT did not saturate by k = 16"),
    (ab.CHECKS_FAILED, {"failed": (3, 5)}, "fails checks 3, 5 for this defender"),
    (ab.BACKED, {"inconclusive": (2,), "not_run": (5, 6)}, "(check 2 inconclusive; checks 5, 6 not run)"),
    (ab.OTHER_MODEL, {}, "another model"),
    (ab.NOT_AUDITED, {}, "not in the audit"),
    (ab.OTHER_ATTACK, {"table_eot": None}, "the table has no cw attacker"),
    (ab.EOT_NOT_RUN, {}, "did not run the EOT check"),
])
def test_backing_sentences(status, kw, words) -> None:
    assert words in ap.backing_sentence(_backing(status, **kw))


def test_solve_output_carries_the_audit(tmp_path) -> None:
    from gameplay.solve import solve_table
    from gameplay.synthetic import synthetic_payoff_table
    from gameplay.table import payoff_table_from_frame

    table = payoff_table_from_frame(synthetic_payoff_table(8, 6, seed=3), "synthetic.csv")
    report = solve_table(table, max_accuracy_drop=0.01, robustness_samples=0)
    label = report.recommendation.mix[0][0]
    summary = ab.AuditSummary(report.defenders[0].model, "r=0.3", "cw", "cw[k=0]", 1, (
        ab.DefenderSummary(label, "pass", tuple((n, "pass") for n in range(1, 8)), 4, 8),))
    backings = ab.report_backings(summary, report)
    assert backings[0].defender == label and backings[0].status == ab.BACKED  # the table has cw with EOT 8
    assert len({b.defender for b in backings}) == len(backings)  # a defender in two roles is one line
    text = ap.solve_markdown_with_audit(report, backings)
    assert text.index("## Recommendation") < text.index("## Audit") < text.index("## Defender strategies")
    assert f"{backings[0].role} {label}: backed by the audit: EOT saturates at k = 4" in text
    blob = json.loads(ap.solve_json_with_audit(report, backings))
    assert blob["audit"][0]["status"] == ab.BACKED and "sentence" in blob["audit"][0]


def test_page_renders_offline_without_errors(small_audit, tmp_path) -> None:
    from tests.browser import chromium_or_skip, render_in_chromium

    chromium = chromium_or_skip()
    evidence, verdict = small_audit
    html, _ = ap.write_audit(evidence, verdict, tmp_path / "audit.html")
    expected = 1 + sum(ap.figure_loss_curves(a) is not None for a in evidence.defenders)
    result = render_in_chromium(html, chromium=chromium)
    assert result.plotly_loaded and result.errors == () and result.external_requests == ()
    assert result.plot_count == expected and result.rendered_count == expected, result.figures
