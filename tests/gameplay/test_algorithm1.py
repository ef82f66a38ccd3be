"""Algorithm 1 (paper section 3.4) against hand-built grids and a literal transcription of its pseudo-code."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameplay.algorithm1 import algorithm1, algorithm1_table
from gameplay.game import Game
from gameplay.synthetic import synthetic_payoff_table
from gameplay.table import payoff_table_from_frame


def paper_loop(acc_at: dict[int, float], a_max: float, eps: float, steps: int) -> tuple[int, bool]:
    """The pseudo-code, literally, on the grid r' = k * step_size (k = 1..steps): returns the k it ends
    holding and whether it ended by a violation (True) or by running off the measured grid (False)."""
    a, k = a_max, 0
    while a > a_max - eps:
        if k == steps:
            return k, False
        k += 1
        a = acc_at[k]
    return k, True


def test_hand_table():
    """a_max = 0.99, epsilon = 0.01: the loop continues while a > 0.98. r' = 0.1 (0.989) and 0.2 (0.985)
    pass, 0.3 (0.975) fails: the pseudo-code ends holding 0.3, the largest rate satisfying the requirement is
    0.2. The walk stops there even though 0.4 (0.984) would satisfy it again."""
    rates = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    accs = [0.99, 0.989, 0.985, 0.975, 0.984, 0.90]
    c = algorithm1(rates, accs, reference_accuracy=0.99, epsilon=0.01)
    assert c.rate == 0.2 and c.accuracy == 0.985 and c.index == 2
    assert c.stopped_at == 0.3 and c.stopped_accuracy == 0.975
    assert [t[0] for t in c.trace] == [0.1, 0.2, 0.3]
    # Order of the input does not matter; the index points into the input.
    c2 = algorithm1(rates[::-1], accs[::-1], 0.99, 0.01)
    assert c2.rate == 0.2 and c2.index == 3


def test_strict_inequality_and_start_at_zero():
    """The paper's test is strict: a = a_max - epsilon stops the walk. Here it stops at the first rate, so
    the answer is the starting r' = 0 (off the grid: no index)."""
    c = algorithm1([0.25, 0.5], [0.25, 0.2], reference_accuracy=0.5, epsilon=0.25)
    assert c.rate == 0.0 and c.index is None and c.stopped_at == 0.25
    c = algorithm1([0.0, 0.25, 0.5], [0.5, 0.25, 0.2], reference_accuracy=0.5, epsilon=0.25)
    assert c.rate == 0.0 and c.index == 0  # r' = 0 measured: the answer is that row


def test_whole_grid_within_constraint():
    c = algorithm1([0.1, 0.2], [0.99, 0.99], reference_accuracy=0.99, epsilon=0.01)
    assert c.rate == 0.2 and c.stopped_at is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.80, 1.0), min_size=1, max_size=9), st.floats(0.001, 0.1))
def test_matches_the_pseudo_code(accs, eps):
    a_max = 0.95
    steps = len(accs)
    acc_at = {k + 1: a for k, a in enumerate(accs)}
    k, violated = paper_loop(acc_at, a_max, eps, steps)
    expected = (k - 1) if violated else k  # the rate before the violating one
    rates = [round(0.1 * (i + 1), 10) for i in range(steps)]
    c = algorithm1(rates, accs, a_max, eps)
    assert c.rate == pytest.approx(0.1 * expected)
    assert (c.stopped_at is not None) == violated


def test_table_level_uses_the_best_model_and_ignores_sap():
    """Two models: step 1 picks the one with the best undefended accuracy; each attacker's ASR is read at the
    chosen rate of that model; SAP is no point of the grid."""
    df = synthetic_payoff_table(8, 4, seed=2, models=(0.3, 0.5))
    table = payoff_table_from_frame(df)
    a1 = algorithm1_table(table, 0.01)
    best = max(table.references, key=lambda r: r.accuracy)
    assert all(0.3 <= r.train_dropout <= 0.7 for r in table.references)
    assert a1.model == best.model and len(a1.per_model) == 2
    assert a1.choice.grid == tuple(sorted(d.test_dropout for d in table.defenders
                                          if d.model == best.model and d.defense != "sap"))
    i = table.defender_labels.index(a1.defender)
    assert table.defenders[i].defense in ("dropout", "none") and table.defenders[i].model == best.model
    for j, row in enumerate(a1.rows):
        assert row.asr == table.asr[i, j] and row.rate == a1.choice.rate
    # Per attacker, through the facade.
    game = Game.from_payoff_table(table, max_accuracy_drop=0.01)
    att = table.attacker_labels[1]
    assert game.algorithm1_for(att).asr == table.asr[i, 1]


def test_step_one_prefers_training_rates_in_the_papers_range():
    """The r = 0 model is the most accurate, but the paper's step 1 chooses r in [0.3, 0.7]."""
    df = synthetic_payoff_table(5, 2, seed=4, models=(0.0, 0.5, 0.9))
    boost = df["train_dropout"] == 0.0
    for col in ("clean_accuracy", "clean_accuracy_low", "clean_accuracy_high"):
        df.loc[boost, col] += 0.005
    table = payoff_table_from_frame(df)
    best = max(table.references, key=lambda r: r.accuracy)
    assert best.train_dropout == 0.0
    assert algorithm1_table(table, 0.01).train_dropout == 0.5
    only_outside = payoff_table_from_frame(df[df["train_dropout"] != 0.5])
    assert algorithm1_table(only_outside, 0.01).train_dropout == 0.0  # none in range: the best of all


def test_reference_without_undefended_row_is_the_max_accuracy():
    df = synthetic_payoff_table(7, 3, seed=1, undefended=False)
    table = payoff_table_from_frame(df)
    ref = table.references[0]
    assert ref.accuracy == max(d.accuracy for d in table.defenders)
    assert ref.source.startswith("max clean accuracy")
    a1 = algorithm1_table(table, 0.0001)
    if a1.choice.rate == 0.0:
        assert a1.defender is None and all(r.asr is None for r in a1.rows)
    assert np.all(table.accuracy_drop >= 0)
