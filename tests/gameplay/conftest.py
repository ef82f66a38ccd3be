"""Helpers for the gameplay tests: equilibrium checks written out from the definition, and payoff CSVs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gameplay.synthetic import synthetic_payoff_table

TOL = 1e-6


def assert_nash(A, B, x, y, tol: float = TOL) -> None:
    """(x, y) is a Nash equilibrium of (A, B) by definition: probability vectors, and no pure deviation by either
    player gains more than ``tol``."""
    A, B, x, y = (np.asarray(v, dtype=float) for v in (A, B, x, y))
    for s in (x, y):
        assert s.min() >= -tol and abs(s.sum() - 1) <= tol
    assert (A @ y).max() <= x @ A @ y + tol, "the defender gains by deviating"
    assert (x @ B).max() <= x @ B @ y + tol, "the attacker gains by deviating"


@pytest.fixture
def write_csv(tmp_path):
    """Write a DataFrame to a CSV in the test's folder and return its path."""
    def write(df: pd.DataFrame, name: str = "payoff.csv"):
        path = tmp_path / name
        df.to_csv(path, index=False)
        return path
    return write


@pytest.fixture(scope="session")
def small_table() -> pd.DataFrame:
    """8 defenders (none, 6 dropout rates, SAP) x 6 attackers (2 of them adaptive)."""
    return synthetic_payoff_table(8, 6, seed=3)
