"""Every equilibrium returned on random games passes the epsilon-regret check, written out from the definition;
on zero-sum games the minimax value equals the Stackelberg value."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gameplay.game import Game
from gameplay.minimax import minimax
from gameplay.nash import nash_equilibria
from gameplay.regret import is_equilibrium, regret
from gameplay.stackelberg import stackelberg
from tests.gameplay.conftest import assert_nash


@pytest.mark.parametrize("seed", range(3))
def test_random_6x6_equilibria(seed):
    rng = np.random.default_rng(seed)
    A, B = rng.random((6, 6)), rng.random((6, 6))
    result = nash_equilibria(A, B)
    assert result.method == "support enumeration" and result.complete
    assert result.equilibria
    for eq in result.equilibria:
        assert_nash(A, B, eq.defender, eq.attacker)
        assert len(eq.support("defender")) == len(eq.support("attacker"))  # nondegenerate: equal supports
    assert len(result.equilibria) % 2 == 1  # a nondegenerate game has an odd number of equilibria
    assert not result.degenerate


@pytest.mark.parametrize("seed", range(2))
def test_random_30x30_equilibria(seed):
    rng = np.random.default_rng(100 + seed)
    A, B = rng.random((30, 30)), rng.random((30, 30))
    result = nash_equilibria(A, B)
    assert result.method == "lemke howson"
    assert result.equilibria and result.rejected == 0
    for eq in result.equilibria:
        assert_nash(A, B, eq.defender, eq.attacker)


@pytest.mark.parametrize("shape", [(6, 6), (30, 30), (30, 60)])
def test_zero_sum_minimax_value_equals_stackelberg_value(shape):
    rng = np.random.default_rng(sum(shape))
    A = rng.normal(size=shape)
    mm = minimax(A)
    st_ = stackelberg(A, -A)
    assert mm.defender_value == pytest.approx(st_.defender_value, abs=1e-7)
    # Minimax by definition: x guarantees v against every column, y holds every row to v.
    v = mm.defender_value
    assert (mm.x @ A).min() >= v - 1e-7 and (A @ mm.y).max() <= v + 1e-7
    assert minimax(A, "nashpy").defender_value == pytest.approx(v, abs=1e-7)


def test_regret_by_hand():
    A = np.array([[1.0, 0.0], [0.0, 2.0]])
    B = np.array([[0.0, 3.0], [1.0, 0.0]])
    x, y = np.array([1.0, 0.0]), np.array([1.0, 0.0])
    # Defender: rows give (1, 0) against y, it gets 1: no regret. Attacker: columns give (0, 3), it gets 0.
    assert regret(A, B, x, y) == (0.0, 3.0)
    assert not is_equilibrium(A, B, x, y)


small = st.integers(2, 4)


@st.composite
def games(draw):
    m, n = draw(small), draw(small)
    values = st.integers(-3, 3).map(float)
    return draw(arrays(float, (m, n), elements=values)), draw(arrays(float, (m, n), elements=values))


@settings(max_examples=25, deadline=None)
@given(games())
def test_property_every_returned_equilibrium_is_one(game):
    """Integer payoffs make many games degenerate (ties): the solvers must still return only equilibria."""
    A, B = game
    for method in ("support_enumeration", "lemke_howson"):
        result = nash_equilibria(A, B, method=method)
        assert result.equilibria  # every finite game has one
        for eq in result.equilibria:
            assert_nash(A, B, eq.defender, eq.attacker)


@settings(max_examples=25, deadline=None)
@given(games())
def test_property_zero_sum_minimax_is_stackelberg(game):
    A, _ = game
    g = Game(A)
    assert g.zero_sum
    assert g.minimax().defender_value == pytest.approx(g.stackelberg().defender_value, abs=1e-7)
    st_ = g.stackelberg()
    assert st_.regret <= 1e-7
