"""solve_payoff_csv end to end: the recommendation on a hand-made table, every solver's output, JSON, markdown."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from analysis.solve_text import reasons, report_json_text, solve_markdown
from gameplay.game import Game
from gameplay.solve import solve_payoff_csv
from gameplay.synthetic import COLUMNS
from gameplay.table import read_payoff_csv
from payoffs.errors import DefdropError
from tests.gameplay.conftest import assert_nash


def hand_table(defenders, attackers, asr, width: float = 0.0) -> pd.DataFrame:
    """defenders: (id, defense, r', accuracy); attackers: (id, eot); asr[i][j]; intervals +- width."""
    rows = []
    for i, (d_id, defense, rate, acc) in enumerate(defenders):
        for j, (a_id, eot) in enumerate(attackers):
            a = asr[i][j]
            rows.append({c: math.nan for c in COLUMNS} | {
                "attacker": a_id, "attack": "cw", "kappa": 0.0, "c": 0.01, "eot": eot, "success_test": "single",
                "defender": d_id, "defense": defense, "train_dropout": 0.3, "test_dropout": rate, "model": "m0",
                "asr": a, "asr_low": max(0.0, a - width), "asr_high": min(1.0, a + width),
                "asr_std_error": width / 1.96, "l2_mean": 2.0 + rate, "clean_accuracy": acc,
                "clean_accuracy_low": acc - width / 10, "clean_accuracy_high": acc + width / 10})
    return pd.DataFrame(rows, columns=COLUMNS)


DEFENDERS = [("none", "none", 0.0, 0.990), ("dropout[r'=0.3]", "dropout", 0.3, 0.988),
             ("dropout[r'=0.5]", "dropout", 0.5, 0.985), ("dropout[r'=0.7]", "dropout", 0.7, 0.95),
             ("sap[frac=1]", "sap", math.nan, 0.989)]
ATTACKERS = [("cw[k=0]", 1), ("cw[k=0,eot=8]", 8)]
ASR = [[1.0, 1.0], [0.2, 0.6], [0.6, 0.2], [0.0, 0.0], [0.8, 0.9]]


def test_hand_table_recommends_the_mix(write_csv):
    """Within epsilon = 0.01 are none, r' = 0.3, 0.5 and SAP (r' = 0.7 loses 4 points). Rates 0.3 and 0.5 each
    stop one attacker: a 50/50 mix holds both to 0.4, any single rate concedes 0.6. Algorithm 1 walks to 0.5
    (0.985 > 0.98) and stops at 0.7."""
    report = solve_payoff_csv(write_csv(hand_table(DEFENDERS, ATTACKERS, ASR)), max_accuracy_drop=0.01,
                              robustness_samples=20)
    assert report.kind == "zero-sum"
    assert report.removed == ("dropout[r'=0.7]",)
    rec = report.recommendation
    assert rec.solver == "minimax" and rec.mixed
    assert dict(rec.mix) == pytest.approx({"dropout[r'=0.3]": 0.5, "dropout[r'=0.5]": 0.5}, abs=1e-7)
    assert rec.worst_case_asr == pytest.approx(0.4)
    assert rec.fixed_worst_asr == pytest.approx(0.6)
    assert rec.algorithm1 == "dropout[r'=0.5]" and rec.algorithm1_worst_asr == 0.6
    a1 = report.algorithm1
    assert a1.choice.rate == 0.5 and a1.choice.stopped_at == 0.7
    assert [r.asr for r in a1.rows] == [0.6, 0.2]
    assert report.minimax.defender_value == pytest.approx(-0.4)
    assert report.stackelberg.defender_value == pytest.approx(-0.4, abs=1e-7)
    # Zero uncertainty: every resample gives the same answer.
    rb = report.robustness
    assert sum(c for _, c in rb.minimax_choice) == 20
    assert rb.quantiles("worst_asr")["q05"] == pytest.approx(0.4)
    assert dict(rb.algorithm1_choice) == {"dropout[r'=0.5]": 20}
    md = solve_markdown(report)
    assert "randomize per query: dropout[r'=0.3] 50.0%, dropout[r'=0.5] 50.0%" in md
    assert "Algorithm 1" in md and "## Robustness" in md


def test_adaptive_attackers_in_the_report(write_csv):
    report = solve_payoff_csv(write_csv(hand_table(DEFENDERS, ATTACKERS, ASR)), max_accuracy_drop=0.01,
                              robustness_samples=0)
    ad = report.adaptive
    assert ad.adaptive == ("cw[k=0,eot=8]",) and ad.non_adaptive == ("cw[k=0]",)
    # Against cw[k=0] alone r' = 0.3 is best (0.2), and then the EOT attacker gets 0.6.
    assert ad.naive_asr == pytest.approx(0.2) and ad.naive_vs_adaptive_asr == pytest.approx(0.6)
    assert ad.recommended_adaptive_asr == pytest.approx(0.4)
    assert any("Adaptive attackers" in line for line in reasons(report))


def test_synthetic_table_all_solvers(small_table, write_csv):
    path = write_csv(small_table)
    report = solve_payoff_csv(path, max_accuracy_drop=0.02, robustness_samples=30, seed=1)
    game = Game.from_payoff_table(read_payoff_csv(path), max_accuracy_drop=0.02)
    assert report.game_defenders == game.defender_labels
    for eq in report.nash.equilibria:
        assert_nash(game.A, game.B, eq.defender, eq.attacker)
    assert report.minimax.defender_value == pytest.approx(report.stackelberg.defender_value, abs=1e-7)
    assert sum(dict(report.recommendation.mix).values()) == pytest.approx(1.0)
    assert sum(c for _, c in report.robustness.minimax_choice) == report.robustness.solved == 30
    data = json.loads(report_json_text(report))  # strict JSON: no NaN
    assert data["kind"] == "zero-sum" and data["recommendation"]["headline"]
    assert set(data["minimax"]["defender"]) <= set(data["game"]["defenders"])
    assert len(data["table"]["asr"]) == 8 and data["nash"]["equilibria"]
    assert data["best_responses"]["defender"].keys() == set(data["game"]["attackers"])


def test_general_sum_recommends_stackelberg(small_table, write_csv):
    report = solve_payoff_csv(write_csv(small_table), max_accuracy_drop=None, mu=0.05, lam=2.0,
                              robustness_samples=0)
    assert report.kind == "general-sum" and report.recommendation.solver == "stackelberg"
    assert report.algorithm1 is None and report.removed == ()
    assert "security strategy" in report.minimax.method
    assert any(n.code == "algorithm1_not_run" for n in report.notes)
    assert "**general-sum**" in solve_markdown(report)


@pytest.mark.parametrize("solver, expect", [("algorithm1", "algorithm1"), ("nash", "nash"),
                                            ("minimax", "minimax"), ("stackelberg", "stackelberg")])
def test_single_solver(small_table, write_csv, solver, expect):
    report = solve_payoff_csv(write_csv(small_table), max_accuracy_drop=0.01, solver=solver, robustness_samples=5)
    assert report.recommendation.solver == expect
    ran = {k for k in ("algorithm1", "minimax", "nash", "stackelberg") if getattr(report, k) is not None}
    assert ran == {solver}
    json.loads(report_json_text(report))


@pytest.mark.parametrize("kwargs, message", [
    ({"solver": "magic"}, "unknown solver"),
    ({"solver": "algorithm1", "max_accuracy_drop": None}, "needs the maximum accuracy drop"),
    ({"mu": -1.0}, "mu -1.0 must be"),
    ({"max_accuracy_drop": 5.0}, "must be below 1"),
    ({"robustness_samples": -3}, "robustness samples"),
])
def test_parameter_errors(small_table, write_csv, kwargs, message):
    kwargs = {"max_accuracy_drop": 0.01} | kwargs
    with pytest.raises(DefdropError, match=message):
        solve_payoff_csv(write_csv(small_table), **kwargs)
