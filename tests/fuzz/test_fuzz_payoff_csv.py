"""Fuzz the payoff-table reader (gameplay.table.read_payoff_csv) at the byte level and at the cell level."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gameplay.synthetic import synthetic_payoff_table
from gameplay.table import read_payoff_csv
from tests.fuzz.mutate import FUZZ, fuzz_bytes, only_defdrop_errors

SEEDS = [synthetic_payoff_table(3, 2, seed=1).to_csv(index=False).encode(),
         synthetic_payoff_table(4, 3, seed=2, models=(0.3, 0.7)).to_csv(index=False).encode()]
# Cell values that have broken CSV readers: empty, NaN/inf spellings, huge, negative, text, markup, quotes.
ODD_CELLS = ["", "nan", "NaN", "inf", "-inf", "1e309", "-1", "0", "2", "1.5", "abc", "[/x]", "dropout[r'=0.3]",
             '"', '""', "a,b", "\n", "\x00", "\u00e9", "9" * 400, "-0", "1e-320", "True", "none", "sap", "dropout"]


@st.composite
def cell_mutations(draw) -> bytes:
    """A seed table with one to three cells (header included) replaced by odd values, or rows dropped/doubled."""
    rows = list(csv.reader(io.StringIO(draw(st.sampled_from(SEEDS)).decode())))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("cell", "cell", "cell", "drop_row", "dup_row", "drop_col")))
        i = draw(st.integers(0, len(rows) - 1))
        if op == "cell" and rows[i]:
            rows[i][draw(st.integers(0, len(rows[i]) - 1))] = draw(st.sampled_from(ODD_CELLS) | st.text(max_size=6))
        elif op == "drop_row" and len(rows) > 1:
            del rows[i]
        elif op == "dup_row":
            rows.insert(i, list(rows[i]))
        elif op == "drop_col" and rows[0]:
            j = draw(st.integers(0, len(rows[0]) - 1))
            rows = [r[:j] + r[j + 1:] for r in rows]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_seeds_are_valid(workdir: Path) -> None:
    for i, seed in enumerate(SEEDS):
        (workdir / f"seed{i}.csv").write_bytes(seed)
        assert read_payoff_csv(workdir / f"seed{i}.csv").shape[0] >= 3


@FUZZ
@given(data=st.one_of(fuzz_bytes(SEEDS, hot=600), cell_mutations()))
def test_fuzz_payoff_csv(workdir: Path, data: bytes) -> None:
    path = workdir / "payoff.csv"
    path.write_bytes(data)
    only_defdrop_errors(read_payoff_csv, path)
