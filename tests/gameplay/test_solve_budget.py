"""The accuracy budget of ``defdrop solve``: a default (the paper's "< 1% accuracy drop"), an explicit opt-out, and
a recommendation that always states, in its bold line, the clean accuracy it costs (issue 18, item 1)."""
from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

import cli
from analysis.solve_report import write_solve_report_html
from analysis.solve_text import headline, report_json_text, solve_markdown
from gameplay.rules import DEFAULT_MAX_ACCURACY_DROP
from gameplay.solve import parse_budget, solve_payoff_csv
from payoffs.errors import DefdropError
from tests.gameplay.test_solve import hand_table

# The demo's trap: the lowest worst-case ASR belongs to r' = 0.9, which loses 37.6 points of clean accuracy.
UNSAFE = [("none", "none", 0.0, 0.967), ("dropout[r'=0.1]", "dropout", 0.1, 0.962),
          ("dropout[r'=0.9]", "dropout", 0.9, 0.591)]
ATTACKERS = [("cw[k=0]", 1), ("cw[k=5,eot=4,exp]", 4)]
ASR = [[1.0, 1.0], [0.8, 0.9], [0.2, 0.233]]


def bold_line(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("**"))


@pytest.fixture
def unsafe_csv(write_csv):
    return write_csv(hand_table(UNSAFE, ATTACKERS, ASR, width=0.02))


def test_default_budget_is_the_papers_one_point():
    from analysis.paper import paper_numbers

    assert DEFAULT_MAX_ACCURACY_DROP == paper_numbers()["mnist_accuracy_limit"]["max_accuracy_drop"] == 0.01
    assert parse_budget(None) == "default" and parse_budget("none") is None and parse_budget("0.02") == 0.02
    with pytest.raises(DefdropError, match="neither a fraction"):
        parse_budget("one")


def test_default_does_not_recommend_the_accuracy_losing_defender(unsafe_csv):
    report = solve_payoff_csv(unsafe_csv, robustness_samples=0)
    rec = report.recommendation
    assert "dropout[r'=0.9]" not in dict(rec.mix)
    assert dict(rec.mix) == {"dropout[r'=0.1]": pytest.approx(1.0)}
    assert rec.accuracy_budget == 0.01 and rec.budget_source == "default"
    assert rec.accuracy == pytest.approx(0.962) and rec.accuracy_drop == pytest.approx(0.005)
    line = bold_line(solve_markdown(report))
    assert "deploy dropout[r'=0.1]: clean accuracy 96.2%, 0.5 points below the undefended 96.7%" in line
    assert "default accuracy budget: drop below 1 point" in line and "< 1% accuracy drop" in line


def test_opt_out_recommends_it_but_states_the_cost(unsafe_csv):
    report = solve_payoff_csv(unsafe_csv, max_accuracy_drop=None, robustness_samples=0)
    rec = report.recommendation
    assert dict(rec.mix) == {"dropout[r'=0.9]": pytest.approx(1.0)}
    line = bold_line(solve_markdown(report))
    assert line.startswith("**deploy dropout[r'=0.9]: clean accuracy 59.1%, 37.6 points below the undefended 96.7%")
    assert "no accuracy budget" in line.split("**")[1]  # inside the bold part


def test_mixed_recommendation_states_expected_accuracy(write_csv):
    defenders = [("none", "none", 0.0, 0.990), ("dropout[r'=0.3]", "dropout", 0.3, 0.988),
                 ("dropout[r'=0.5]", "dropout", 0.5, 0.985)]
    report = solve_payoff_csv(write_csv(hand_table(defenders, ATTACKERS, [[1, 1], [0.2, 0.6], [0.6, 0.2]])),
                              robustness_samples=0)
    rec = report.recommendation
    assert rec.mixed and rec.accuracy == pytest.approx(0.9865) and rec.accuracy_drop_max == pytest.approx(0.005)
    assert "clean accuracy 98.6% on average, 0.35 points below the undefended 99.0% (at most 0.5 points)" \
        in headline(rec)


def test_json_and_html_carry_the_cost(unsafe_csv, tmp_path):
    report = solve_payoff_csv(unsafe_csv, max_accuracy_drop=None, robustness_samples=0)
    data = json.loads(report_json_text(report))["recommendation"]
    assert data["accuracy"] == pytest.approx(0.591) and data["accuracy_drop"] == pytest.approx(0.376)
    assert data["budget_source"] == "none" and data["accuracy_budget"] is None
    assert "clean accuracy 59.1%, 37.6 points below" in data["headline"]
    html = write_solve_report_html(report, tmp_path / "r.html").read_text()
    bold = re.search(r"<strong>(deploy [^<]*)</strong>", html.replace("&#x27;", "'").replace("&#39;", "'"))
    assert bold and "clean accuracy 59.1%, 37.6 points below" in bold.group(1)


def test_cli_default_opt_out_and_bad_value(unsafe_csv):
    runner = CliRunner()
    default = runner.invoke(cli.app, ["solve", str(unsafe_csv), "--robustness-samples", "0"])
    assert default.exit_code == 0, default.output
    assert "**deploy dropout[r'=0.1]: clean accuracy 96.2%" in default.output
    off = runner.invoke(cli.app, ["solve", str(unsafe_csv), "--robustness-samples", "0",
                                  "--max-accuracy-drop", "none"])
    assert off.exit_code == 0, off.output
    assert "**deploy dropout[r'=0.9]: clean accuracy 59.1%, 37.6 points below" in off.output
    bad = runner.invoke(cli.app, ["solve", str(unsafe_csv), "--max-accuracy-drop", "lots"])
    assert bad.exit_code != 0 and len(bad.output.strip().splitlines()) == 1 and "'none'" in bad.output
    helptext = runner.invoke(cli.app, ["solve", "--help"], env={"COLUMNS": "200"}).output
    assert "Default 0.01" in helptext
