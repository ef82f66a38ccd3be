"""The one formatter of human-facing numbers: percentages, 3 significant digits, no scientific notation, no
None/True/False, readable headers (issue 18)."""
from __future__ import annotations

import math
import re
from types import SimpleNamespace

import pandas as pd
import pytest

from analysis.formatting import HEADERS, MISSING, display_table, pct, pct_interval, pp, scale_exponent, sig, text_table
from analysis.gradvar import summary_table
from analysis.report import blocks_to_markdown, frame_to_markdown
from tests.analysis.conftest import make_payoff_table

RAW = re.compile(r"\b(None|True|False|nan|NaN|inf)\b|\d[eE][+-]?\d")
"""What a person should never read in a table: Python's None/True/False, NaN, scientific notation."""


@pytest.mark.parametrize(("value", "text"), [
    (0.914, "91.4%"), (0.0667, "6.67%"), (0.06667, "6.67%"), (0.00777, "0.777%"), (0.007767, "0.777%"),
    (1.0, "100%"), (0.0, "0%"), (0.99996, "100%"), (0.5, "50.0%"), (0.1389, "13.9%"), (0.12345, "12.3%"),
])
def test_percent_has_three_significant_digits(value: float, text: str) -> None:
    assert pct(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (1.353e-05, "0.0000135"), (1.11e-16, "0.000000000000000111"), (-0.000123456, "-0.000123"), (2.0, "2.00"),
    (1234.5, "1234"), (-0.0, "0"), (0.0004, "0.000400"), (math.inf, "∞"), (math.nan, MISSING), (None, MISSING),
])
def test_sig_never_uses_scientific_notation(value, text: str) -> None:
    assert sig(value) == text


def test_interval_and_points() -> None:
    assert pct_interval(0.914, 0.890, 0.935) == "91.4% [89.0, 93.5]"
    assert pct_interval(0.0667, 0.021, 0.113) == "6.67% [2.10, 11.3]"
    assert pct_interval(0.5, math.nan, 0.6) == "50.0%"  # an interval we do not know is left out, not "nan"
    assert pct_interval(None, 0.1, 0.2) == MISSING
    assert pp(-0.5289) == "-52.9 pp" and pp(0.0111) == "+1.11 pp" and pp(0.0) == "0 pp"
    # Floating-point noise in a difference of two equal rates is 0, not "+0.0000111 pp".
    assert pp(1.11e-7) == "0 pp" and pct(0.0000123) == "0.0012%" and pct(0.000123) == "0.0123%"


def test_scaled_column_names_its_power_of_ten() -> None:
    assert scale_exponent([1.353e-05, 2e-6]) == -6 and scale_exponent([0.5, 2.0]) == 0
    shown = display_table(pd.DataFrame({"var_all": [1.353e-05, 2e-06], "var_all_low": [1e-05, 1e-06],
                                        "var_all_high": [2e-05, 3e-06]}))
    assert list(shown.columns) == ["variance (all dims) [95% interval], ×10⁻⁶"]
    assert list(shown.iloc[:, 0]) == ["13.5 [10.0, 20.0]", "2.00 [1.00, 3.00]"]


def _doctored_payoffs() -> pd.DataFrame:
    table = make_payoff_table(train_rates=(0.3,), test_rates=(0.5,), attackers=("cw[kappa=0]",))
    table["asr"] = [0.914, 0.06667, 0.007767]
    table["asr_low"], table["asr_high"] = [0.890, 0.021, math.nan], [0.935, 0.113, math.nan]
    table["l2_mean"] = [1.353e-05, math.nan, 2.5]
    table["within"] = [True, False, None]
    table["verdict"] = ["agrees", None, "inconclusive"]
    table["kurt_chosen"] = [0.5, -1.25, math.nan]
    return table


def test_rendered_table_has_no_raw_values_and_readable_headers() -> None:
    table = _doctored_payoffs()
    md = frame_to_markdown(table)
    body = "\n".join(md.splitlines()[2:])
    assert not RAW.search(md), RAW.search(md)
    header = md.splitlines()[0]
    for raw in ("asr_low", "clean_accuracy", "l2_mean", "kurt_chosen", "n_attacks", "test_dropout", "train_dropout"):
        assert raw not in header, raw
    assert "ASR [95% interval]" in header and "mean L2" in header and "excess kurtosis (D dims)" in header
    assert "91.4% [" in body and "6.67% [" in body and "| 0.777% |" in body  # rates in percent, 3 digits
    assert "| yes |" in body and "| no |" in body and f"| {MISSING} |" in body  # booleans, missing values
    # No raw fraction of a rate anywhere in the table (a fraction beside percentages elsewhere).
    assert "0.914" not in md and "0.0666" not in md


def test_every_number_in_a_rendered_table_has_three_significant_digits() -> None:
    md = frame_to_markdown(_doctored_payoffs()[["asr", "asr_low", "asr_high", "l2_mean", "clean_accuracy"]])
    numbers = re.findall(r"\d+\.\d+|\d+", "\n".join(md.splitlines()[2:]))
    for number in numbers:
        digits = number.replace(".", "").lstrip("0")
        assert len(digits) <= 3 or "." not in number, number  # whole numbers (100) may be longer, never decimals


def test_headers_come_from_one_mapping() -> None:
    table = make_payoff_table()
    shown = display_table(table)
    for column in table.columns:
        if column.endswith(("_low", "_high")):
            continue
        assert any(h.startswith(HEADERS[column]) for h in shown.columns), column


def test_integer_columns_stay_integers() -> None:
    shown = display_table(pd.DataFrame({"check": [1, 8], "n_attacks": [900, 45000], "seconds": [0.5, 12.25]}))
    assert list(shown["check"]) == ["1", "8"] and list(shown["attacks"]) == ["900", "45,000"]
    assert list(shown["time (s)"]) == ["0.500", "12.2"]


def test_formatting_twice_changes_nothing() -> None:
    once = display_table(_doctored_payoffs())
    pd.testing.assert_frame_equal(display_table(once), once)


def test_html_and_markdown_of_a_report_show_the_same_text(tmp_path) -> None:
    from analysis.report import write_report

    table = _doctored_payoffs()[["defender", "asr", "asr_low", "asr_high", "within"]]
    html_path, md_path = write_report(tmp_path, "t", ["## t", table])
    html, md = html_path.read_text(), md_path.read_text()
    assert "91.4% [89.0, 93.5]" in md and "91.4% [89.0, 93.5]" in html
    for cell in ("91.4%", "6.67%", "yes", "no"):
        assert cell in html and cell in md
    assert ">True<" not in html and ">0.914<" not in html and "0.9140" not in html
    assert blocks_to_markdown("t", [table]).count("|") == md.count("|")


def test_terminal_table_is_aligned_text() -> None:
    text = text_table(_doctored_payoffs()[["defender", "asr", "asr_low", "asr_high", "l2_mean"]])
    lines = text.splitlines()
    assert lines[0].startswith("defender") and "ASR [95% interval]" in lines[0]
    assert not RAW.search(text) and "0.0000135" in text


def test_gradvar_summary_table_is_readable() -> None:
    t = pd.DataFrame({"defender": ["none", "dropout[r'=0.5]"]})
    for stat, value in (("var_chosen", 1.36e-05), ("var_all", 2.5e-06), ("snr_all", 3.3333), ("snr_vec", math.inf),
                        ("cos_all", 0.98765), ("kurt_chosen", -1.2)):
        t[stat], t[f"{stat}_low"], t[f"{stat}_high"] = [0.0, value], [math.nan, value / 2], [math.nan, value * 2]
    shown = summary_table(SimpleNamespace(table=t))
    header = " ".join(shown.columns)
    assert "var_all" not in header and "kurt_chosen" not in header and "variance (all dims)" in header
    assert "×10⁻⁶" in header  # tiny variances: a scaled header, not 1.353e-05
    text = " ".join(map(str, shown.to_numpy().ravel()))
    assert not re.search(r"\d[eE][+-]?\d", text) and "13.6 [6.80, 27.2]" in text and "0.988" in text
