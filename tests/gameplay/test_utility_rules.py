"""The attacker's cost is the L2 it actually pays; one accuracy-limit rule and one adaptive rule everywhere."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameplay.algorithm1 import algorithm1, algorithm1_table
from gameplay.game import Game
from gameplay.rules import designated_adaptive, is_adaptive, within_accuracy_limit
from gameplay.synthetic import COLUMNS
from gameplay.table import payoff_table_from_frame
from gameplay.utility import feasible_rows, l2_paid
from payoffs.errors import DefdropError

RATES = (0.0, 0.3, 0.5, 0.7)


def two_attackers(asr: list[float], l2: list[float], with_paid_column: bool) -> pd.DataFrame:
    """Defenders none, r' = 0.3, 0.5, 0.7; attacker ``cw-fails`` never succeeds (a failed C&W returns x: L2 0),
    ``cw`` succeeds on share asr[i] of its attacks, each success costing l2[i]."""
    rows = []
    for i, rate in enumerate(RATES):
        for attacker, a, cost in (("cw-fails", 0.0, math.nan), ("cw", asr[i], l2[i])):
            row = {c: math.nan for c in COLUMNS} | {
                "attacker": attacker, "attack": "cw", "kappa": 0.0, "eot": 1, "success_test": "single",
                "defender": "none" if rate == 0 else f"dropout[r'={rate:g}]", "defense": "none" if rate == 0
                else "dropout", "train_dropout": 0.3, "test_dropout": rate, "model": "m", "asr": a, "asr_low": a,
                "asr_high": a, "asr_majority": a, "l2_mean": cost, "clean_accuracy": 0.99 - 0.01 * rate,
                "clean_accuracy_low": 0.98 - 0.01 * rate, "clean_accuracy_high": 1.0 - 0.01 * rate}
            if with_paid_column:
                row["l2_all_mean"] = 0.0 if a == 0 else a * cost
            rows.append(row)
    return pd.DataFrame(rows)


@settings(max_examples=60, deadline=None)
@given(asr=st.lists(st.floats(0.05, 1.0), min_size=4, max_size=4),
       l2=st.lists(st.floats(0.5, 4.0), min_size=4, max_size=4), worth=st.floats(0.0, 0.99),
       paid_column=st.booleans())
def test_an_attacker_that_always_fails_is_never_preferred(asr, l2, worth, paid_column) -> None:
    """mu below 1 / (L2 of a success): each success is worth its distortion, so succeeding beats failing against
    every defender (the old cost, mu x mean L2 of the successes charged to every attack, made failing better)."""
    mu = worth / max(l2)
    game = Game.from_payoff_table(two_attackers(asr, l2, paid_column), mu=mu)
    fails, succeeds = game.attacker_labels.index("cw-fails"), game.attacker_labels.index("cw")
    assert (game.B[:, succeeds] > game.B[:, fails]).all()
    assert all(fails not in cols for cols in game.best_responses().attacker)


def test_the_old_cost_made_failing_pay() -> None:
    """The example the old utility got wrong: ASR 0.9 at L2 2.4 per success, mu = 0.4."""
    game = Game.from_payoff_table(two_attackers([0.9] * 4, [2.4] * 4, False), mu=0.4)
    assert game.B[0, game.attacker_labels.index("cw")] == pytest.approx(0.9 - 0.4 * 0.9 * 2.4)


def test_unknown_cost_is_an_error_not_zero() -> None:
    df = two_attackers([0.9] * 4, [2.0] * 4, False)
    df.loc[df["attacker"] == "cw", "l2_mean"] = math.nan
    table = payoff_table_from_frame(df)
    with pytest.raises(DefdropError, match="cost mu x L2 is unknown"):
        l2_paid(table)
    Game.from_payoff_table(df, mu=0.0)  # no cost asked: no L2 needed
    with pytest.raises(DefdropError, match="unknown"):
        Game.from_payoff_table(df, mu=0.1)
    paid, how = l2_paid(payoff_table_from_frame(two_attackers([0.9] * 4, [2.0] * 4, True)))
    assert "l2_all_mean" in how and paid[:, 1] == pytest.approx(1.8)


def test_a_drop_of_exactly_epsilon_is_outside_the_limit_for_the_game_and_algorithm1() -> None:
    """0.99 - 0.98 = 0.010000000000000009: not below epsilon = 0.01, for Algorithm 1 (the paper's strict test)
    and for the game alike (the game used to let it in)."""
    df = two_attackers([0.9] * 4, [2.0] * 4, True)
    accuracy = {0.0: 0.99, 0.3: 0.985, 0.5: 0.98, 0.7: 0.97}
    for col, shift in (("clean_accuracy", 0.0), ("clean_accuracy_low", -0.01), ("clean_accuracy_high", 0.01)):
        df[col] = df["test_dropout"].map(accuracy) + shift
    table = payoff_table_from_frame(df)
    labels = [table.defender_labels[i] for i in feasible_rows(table, 0.01)]
    assert labels == ["none", "dropout[r'=0.3]"]
    assert algorithm1_table(table, 0.01).choice.rate == 0.3
    assert not within_accuracy_limit(0.99 - 0.98, 0.01) and within_accuracy_limit(0.0099, 0.01)
    # epsilon = 0: only the undefended row (Algorithm 1's starting point) stays.
    assert [table.defender_labels[i] for i in feasible_rows(table, 0.0)] == ["none"]
    assert algorithm1_table(table, 0.0).choice.rate == 0.0


@settings(max_examples=80, deadline=None)
@given(accs=st.lists(st.floats(0.9, 1.0), min_size=3, max_size=3), eps=st.sampled_from([0.0, 0.005, 0.01, 0.02]))
def test_algorithm1_and_the_game_apply_one_rule(accs, eps) -> None:
    """Every rate Algorithm 1 walks through is one the game admits, and the first it stops at is one it refuses."""
    ref = 0.95
    choice = algorithm1([0.3, 0.5, 0.7], accs, ref, eps)
    df = two_attackers([0.5] * 4, [1.0] * 4, True)
    for col in ("clean_accuracy", "clean_accuracy_low", "clean_accuracy_high"):
        df[col] = df["test_dropout"].map(dict(zip(RATES, [ref] + accs)))
    table = payoff_table_from_frame(df)
    admitted = {table.defenders[i].test_dropout for i in feasible_rows(table, eps)}
    for rate, _, within in choice.trace:
        assert (rate in admitted) == within


def test_one_definition_of_adaptive_and_the_designated_attacker() -> None:
    assert not is_adaptive(1, "single", 0.0) and not is_adaptive(1, "single", math.nan)
    assert is_adaptive(2, "single", 0.0) and is_adaptive(1, "expected", 0.0) and is_adaptive(1, "single", 5.0)
    assert list(is_adaptive(np.array([1, 8]), np.array(["single", "single"]), np.array([0.0, np.nan]))) == [False, True]
    # Chosen by protocol (expected test, then EOT, then kappa), whatever the ASR.
    candidates = [(1, "single", 0.0), (16, "single", 0.0), (4, "expected", 0.0), (4, "expected", 5.0)]
    assert designated_adaptive(candidates) == 3
    assert designated_adaptive([(1, "single", 0.0)]) is None
