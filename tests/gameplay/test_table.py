"""The payoff CSV reader: clear one-line errors naming the column and line, labels for several models."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gameplay.solve import solve_payoff_csv
from gameplay.synthetic import synthetic_payoff_table
from gameplay.table import read_payoff_csv
from payoffs.errors import DefdropError


def error_of(path) -> str:
    with pytest.raises(DefdropError) as info:
        solve_payoff_csv(path, max_accuracy_drop=0.01, robustness_samples=0)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_reads_a_table(small_table, write_csv):
    table = read_payoff_csv(write_csv(small_table))
    assert table.shape == (8, 6)
    assert table.defender_labels[0] == "none" and table.defender_labels[-1] == "sap[frac=1]"
    rates = [d.test_dropout for d in table.defenders if d.defense == "dropout"]
    assert rates == sorted(rates)
    assert table.references[0].source == "undefended row none"
    assert np.isfinite(table.asr_se).all()


def test_missing_column(small_table, write_csv):
    message = error_of(write_csv(small_table.drop(columns=["asr_high", "clean_accuracy"])))
    assert "missing column(s) asr_high, clean_accuracy" in message


def test_nan_asr(small_table, write_csv):
    df = small_table.copy()
    df.loc[5, "asr"] = np.nan
    message = error_of(write_csv(df))
    assert "column asr is NaN" in message and "line 7" in message


def test_non_number(small_table, write_csv):
    df = small_table.copy().astype({"clean_accuracy": object})
    df.loc[0, "clean_accuracy"] = "high"
    assert "non-number 'high'" in error_of(write_csv(df))


@pytest.mark.parametrize("who", ["defender", "attacker"])
def test_single_strategy(small_table, write_csv, who):
    df = small_table[small_table[who] == small_table[who].iloc[0]]
    assert f"single {who} strategy" in error_of(write_csv(df))


def test_duplicate_and_missing_cells(small_table, write_csv):
    dup = pd.concat([small_table, small_table.iloc[[3]]], ignore_index=True)
    assert "appears 2 times" in error_of(write_csv(dup, "dup.csv"))
    gap = small_table.drop(index=[4])
    message = error_of(write_csv(gap, "gap.csv"))
    assert "missing e.g." in message and small_table.loc[4, "attacker"] in message


def test_bad_values(small_table, write_csv):
    df = small_table.copy()
    df.loc[2, "defense"] = "jpeg"
    assert "defense 'jpeg'" in error_of(write_csv(df, "a.csv"))
    df = small_table.copy()
    df.loc[2, "asr"] = 1.5
    assert "asr 1.5" in error_of(write_csv(df, "b.csv"))
    df = small_table.copy()
    k = int(df["asr"].idxmin())
    df.loc[k, "asr_low"] = df.loc[k, "asr"] + 0.1
    assert "does not contain" in error_of(write_csv(df, "c.csv"))
    df = small_table.copy()
    df.loc[df["defense"] == "dropout", "test_dropout"] = np.nan
    assert "test_dropout is NaN" in error_of(write_csv(df, "d.csv"))


def test_unreadable_files(tmp_path):
    assert "does not exist" in error_of(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    assert "not a readable CSV" in error_of(bad)


def test_several_models_get_unique_labels(write_csv):
    df = synthetic_payoff_table(5, 3, seed=0, models=(0.3, 0.5))
    df["defender"] = df["defender"].str.replace(r"^r=[^/]+/", "", regex=True)  # ids without the model prefix
    table = read_payoff_csv(write_csv(df))
    assert len(set(table.defender_labels)) == 10
    assert table.defender_labels[0] == "r=0.3/none"
    assert len(table.references) == 2
