"""`reproduce` hands its payoff cells to the executor it is given (a Dask cluster, say), every sweep of them."""
from __future__ import annotations

from dataclasses import replace

import pytest

from analysis.reproduce import PROFILES, Sweep, run_payoffs


class Handed(Exception):
    pass


class RefusingExecutor:
    """Records the jobs it is handed, then stops the study (no cell needs to run to show where they went)."""

    def __init__(self) -> None:
        self.handed: list[list] = []

    def run(self, jobs):
        self.handed.append(list(jobs))
        raise Handed


def test_run_payoffs_uses_the_given_executor(small_checkpoint, tmp_path) -> None:
    profile = replace(PROFILES["smoke"], test_rates=(0.5,), sweeps=(Sweep((0.3,), ("fgsm",)),))
    executor = RefusingExecutor()
    with pytest.raises(Handed):
        run_payoffs(profile, {0.3: small_checkpoint}, tmp_path, 0, 1, "cpu", executor=executor)
    [jobs] = executor.handed
    # paper and adaptive FGSM x (dropout r' = 0.5, SAP): 4 cells, plus the 2 defenders' clean accuracy
    assert sorted(fn.__name__ for fn, _ in jobs) == ["run_accuracy"] * 2 + ["run_cell"] * 4
