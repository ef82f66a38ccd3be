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


class InterruptingExecutor:
    """Runs the jobs here and is interrupted (Ctrl-C) after ``finish`` of them."""

    def __init__(self, finish: int) -> None:
        self.finish = finish

    def run(self, jobs):
        for i, (fn, spec) in enumerate(jobs):
            if i == self.finish:
                raise KeyboardInterrupt
            yield i, fn(spec, None)


def test_interrupted_sweep_writes_the_partial_table(small_checkpoint, tmp_path) -> None:
    import pandas as pd

    from analysis.reproduce import partial_payoff_path

    profile = replace(PROFILES["smoke"], test_rates=(0.5,), n_images=1, eval_samples=2,
                      sweeps=(Sweep((0.3,), ("fgsm",)),))
    lines: list[str] = []
    # jobs: the 2 clean-accuracy cells first, then the 4 attack cells; stop after the first attack cell
    with pytest.raises(KeyboardInterrupt):
        run_payoffs(profile, {0.3: small_checkpoint}, tmp_path, 0, 1, "cpu", executor=InterruptingExecutor(3),
                    log=lines.append)
    partial = pd.read_csv(partial_payoff_path(tmp_path))
    assert len(partial) == 1 and lines == [f"wrote the partial table of the 1 finished of 4 attack cells: "
                                           f"{partial_payoff_path(tmp_path)}"]
    table = run_payoffs(profile, {0.3: small_checkpoint}, tmp_path, 0, 1, "cpu")  # resumes from the cache
    assert len(table) == 4 and not partial_payoff_path(tmp_path).exists()
