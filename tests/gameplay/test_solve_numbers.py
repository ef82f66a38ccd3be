"""The solve report writes the same numbers in markdown and HTML, as a person reads them: percentages with one
decimal (91.4%, never 0.914), no None/True/False, no scientific notation, readable headers (issue 18, item 3)."""
from __future__ import annotations

import html
import re

import pytest

from analysis.solve_report import write_solve_report_html
from analysis.solve_text import defender_rows, interval, number, pct, regret_text, signed_points, solve_markdown
from gameplay.solve import solve_payoff_csv
from tests.gameplay.test_solve import ASR, ATTACKERS, DEFENDERS, hand_table

SCIENTIFIC = re.compile(r"\d[eE][+-]?\d")
RAW = re.compile(r"\b(None|True|False|nan|NaN)\b")


def test_number_formats():
    assert pct(0.914) == "91.4%" and pct(None) == "-"
    assert number(1.11e-16) == "0" and number(-1.11e-16) == "0" and number(-0.4) == "-0.4" and number(100) == "100"
    assert number(1.5e-7, 9) == "0.00000015"
    assert regret_text(1.11e-16) == "0" and regret_text(3e-6) == "< 0.01 points"
    assert regret_text(0.0025) == "0.25 points"
    assert signed_points(0.005) == "+0.5 pt" and signed_points(-0.376) == "-37.6 pt" and signed_points(0.0) == "0 pt"
    assert interval(0.88, 0.931) == "[88.0%, 93.1%]" and interval(float("nan"), float("nan")) == "unknown"


def _tables(page: str) -> list[list[list[str]]]:
    """Every HTML table as rows of cell texts (header row first)."""
    out = []
    for table in re.findall(r"<table.*?</table>", page, flags=re.S):
        rows = [[html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row, flags=re.S)]
                for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)]
        out.append(rows)
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("numbers") / "payoff.csv"
    hand_table(DEFENDERS, ATTACKERS, ASR, width=0.02).to_csv(path, index=False)
    return solve_payoff_csv(path, max_accuracy_drop=0.01, robustness_samples=20)


def test_html_defender_table_matches_the_markdown(report, tmp_path):
    page = write_solve_report_html(report, tmp_path / "r.html").read_text()
    tables = _tables(page)
    header, rows = defender_rows(report, detail=True)
    html_table = next(t for t in tables if t[0][:1] == ["defender"])
    assert html_table[0] == header and html_table[1:] == rows
    md = solve_markdown(report)
    for md_row in defender_rows(report)[1]:
        assert "| " + " | ".join(md_row) + " |" in md
    # the same accuracy, written the same way, in both
    assert "| none | 99.0% | 0 pt | yes |" in md and ["none", "r=0.3", "none", "0", "0.3", "99.0%", "0 pt"] == \
        html_table[1][:7]


def test_no_raw_values_in_html_tables_or_markdown(report, tmp_path):
    page = write_solve_report_html(report, tmp_path / "r.html").read_text()
    for table in _tables(page):
        for row in table[1:]:
            for head, cell in zip(table[0], row):
                assert not RAW.search(cell) and not SCIENTIFIC.search(cell), cell
                if "dropout" not in head:  # rates r, r' are written as the ids write them
                    assert not re.fullmatch(r"-?0\.\d+", cell), f"a bare fraction under {head}: {cell}"
    md = solve_markdown(report)
    assert not RAW.search(md) and not SCIENTIFIC.search(md)
    assert "regret 0" in md and "defender -40.0, attacker 40.0" in md


def test_readable_headers(report, tmp_path):
    page = write_solve_report_html(report, tmp_path / "r.html").read_text()
    headers = {c for t in _tables(page) for c in t[0]}
    assert {"clean accuracy", "accuracy drop", "worst-case ASR", "95% interval", "test dropout r'"} <= headers
    assert not headers & {"r'", "low", "high", "worst ASR"}
