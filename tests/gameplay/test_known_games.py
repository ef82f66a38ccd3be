"""Solvers against games whose equilibria are known by hand."""
from __future__ import annotations

import nashpy
import numpy as np
import pytest

from gameplay.game import Game
from gameplay.minimax import minimax
from gameplay.nash import lemke_howson, nash_equilibria
from gameplay.stackelberg import stackelberg
from tests.gameplay.conftest import assert_nash

MATCHING_PENNIES = np.array([[1.0, -1.0], [-1.0, 1.0]])
RPS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])


@pytest.mark.parametrize("A, k", [(MATCHING_PENNIES, 2), (RPS, 3)])
@pytest.mark.parametrize("method", ["support_enumeration", "lemke_howson"])
def test_unique_mixed_equilibrium_of_zero_sum_games(A, k, method):
    """Matching pennies and rock-paper-scissors: the unique equilibrium is uniform for both, value 0."""
    result = nash_equilibria(A, -A, method=method)
    assert len(result.equilibria) == 1
    eq = result.equilibria[0]
    np.testing.assert_allclose(eq.defender, np.full(k, 1 / k), atol=1e-9)
    np.testing.assert_allclose(eq.attacker, np.full(k, 1 / k), atol=1e-9)
    assert eq.defender_value == pytest.approx(0, abs=1e-12)
    if method == "support_enumeration":
        assert result.complete and not result.degenerate


@pytest.mark.parametrize("A", [MATCHING_PENNIES, RPS])
def test_minimax_and_stackelberg_of_zero_sum_games(A):
    k = A.shape[0]
    for method in ("highs", "nashpy"):
        eq = minimax(A, method)
        np.testing.assert_allclose(eq.defender, np.full(k, 1 / k), atol=1e-8)
        np.testing.assert_allclose(eq.attacker, np.full(k, 1 / k), atol=1e-8)
        assert eq.defender_value == pytest.approx(0, abs=1e-9)
    st = stackelberg(A, -A)
    assert st.defender_value == pytest.approx(0, abs=1e-9)
    np.testing.assert_allclose(st.defender, np.full(k, 1 / k), atol=1e-7)


def test_prisoners_dilemma():
    """Rows/columns (cooperate, defect); defecting strictly dominates, so (D, D) is the unique equilibrium with
    payoffs (1, 1), although (C, C) would give both 3. The leader cannot do better by committing either: the
    follower defects against every commitment, and against D the leader's best is D."""
    A = np.array([[3.0, 0.0], [5.0, 1.0]])
    B = A.T
    game = Game(A, B)
    assert game.kind == "general-sum"
    result = game.nash()
    assert len(result.equilibria) == 1 and result.complete and not result.degenerate
    eq = result.equilibria[0]
    assert eq.defender == (0.0, 1.0) and eq.attacker == (0.0, 1.0)
    assert (eq.defender_value, eq.attacker_value) == (1.0, 1.0)
    assert game.best_responses().pure_equilibria == ((1, 1),)
    st = game.stackelberg()
    assert st.defender_value == pytest.approx(1.0) and st.attacker == (0.0, 1.0)


def test_degenerate_game_with_a_continuum_is_detected():
    """Row 0 strictly dominates for the defender, and against row 0 the attacker is indifferent between its
    columns: every (row 0, y) is an equilibrium, a segment. Both solvers must return only true equilibria, and
    report the game as degenerate, the continuum included."""
    A = np.array([[1.0, 1.0], [0.0, 0.0]])
    B = np.array([[1.0, 1.0], [0.0, 0.0]])
    for method in ("support_enumeration", "lemke_howson"):
        result = nash_equilibria(A, B, method=method)
        assert result.equilibria, method
        for eq in result.equilibria:
            assert eq.defender == (1.0, 0.0)
            assert_nash(A, B, eq.defender, eq.attacker)
        assert result.degenerate
        assert any("tied best responses" in r for r in result.degeneracy)
    full = nash_equilibria(A, B, method="support_enumeration")
    assert {eq.attacker for eq in full.equilibria} >= {(1.0, 0.0), (0.0, 1.0)}
    assert any("continuum" in r for r in full.degeneracy)
    for t in np.linspace(0, 1, 7):  # the whole segment is an equilibrium, as reported
        assert_nash(A, B, [1, 0], [t, 1 - t])


def test_stackelberg_differs_from_nash():
    """Leader (defender, rows) A = [[2, 4], [1, 3]], follower (attacker) B = [[1, 0], [0, 1]].

    Nash: row 0 strictly dominates row 1 for the leader (2 > 1, 4 > 3), so the leader plays row 0 and the
    follower answers column 0 (1 > 0): the unique equilibrium (row 0, column 0), leader payoff 2.

    Stackelberg: the leader commits to x = (p, 1 - p). The follower gets p from column 0 and 1 - p from column
    1, so it plays column 1 when p <= 1/2 (at p = 1/2, ties go the leader's way in the strong equilibrium). The
    leader then gets 4p + 3(1 - p) = 3 + p, largest at p = 1/2: 3.5 > 2. Committing to the dominated row half
    the time pays, because it moves the follower to the column the leader prefers.
    """
    A = np.array([[2.0, 4.0], [1.0, 3.0]])
    B = np.array([[1.0, 0.0], [0.0, 1.0]])
    nash = nash_equilibria(A, B)
    assert len(nash.equilibria) == 1
    ne = nash.equilibria[0]
    assert ne.defender == (1.0, 0.0) and ne.attacker == (1.0, 0.0) and ne.defender_value == 2.0
    st = stackelberg(A, B)
    np.testing.assert_allclose(st.defender, [0.5, 0.5], atol=1e-7)
    assert st.attacker == (0.0, 1.0)
    assert st.defender_value == pytest.approx(3.5, abs=1e-7)
    assert st.attacker_value == pytest.approx(0.5, abs=1e-7)
    assert st.regret <= 1e-7  # the follower's column is a best response to the commitment


def test_scaled_lemke_howson_takes_nashpys_path():
    """On small games, where nashpy's integer-style pivoting stays finite, both give the same equilibrium from
    every dropped label."""
    rng = np.random.default_rng(7)
    for _ in range(5):
        A, B = rng.random((4, 5)), rng.random((4, 5))
        game = nashpy.Game(A, B)
        for label in range(9):
            x0, y0 = game.lemke_howson(initial_dropped_label=label)
            x1, y1 = lemke_howson(A, B, label)
            np.testing.assert_allclose(x1, x0, atol=1e-9)
            np.testing.assert_allclose(y1, y0, atol=1e-9)


def test_lemke_howson_time_limit():
    rng = np.random.default_rng(0)
    A, B = rng.random((30, 30)), rng.random((30, 30))
    with pytest.raises(TimeoutError):
        lemke_howson(A, B, 0, time_limit=0.0)
    result = nash_equilibria(A, B, method="lemke_howson", label_time_limit=0.0)
    assert result.equilibria == () and len(result.timed_out) == len(result.labels) > 0
