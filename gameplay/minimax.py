"""Minimax (von Neumann): the defender's optimal mixed strategy over its rows and the value of a zero-sum game.

The defender (rows) maximizes its guaranteed utility v:

    max_{x, v} v   s.t.   (A^T x)_j >= v for every attacker column j,   sum_i x_i = 1,   x >= 0.

The dual variables of the column constraints are the attacker's minimax strategy y, so one LP (scipy's HiGHS)
gives both; ``method="nashpy"`` solves the two LPs with nashpy's ``linear_program`` instead (a cross-check).
Against a general-sum game the same LP on the defender's own utility gives its *security* strategy: the best
guarantee against an attacker who only wants to hurt it.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from gameplay.equilibrium import Equilibrium
from payoffs.errors import DefdropError

METHODS = ("highs", "nashpy")


def _highs(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m, n = A.shape
    c = np.zeros(m + 1)
    c[-1] = -1.0  # linprog minimizes; maximize v
    a_ub = np.hstack([-A.T, np.ones((n, 1))])
    a_eq = np.r_[np.ones(m), 0.0][None, :]
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(n), A_eq=a_eq, b_eq=[1.0],
                  bounds=[(0, None)] * m + [(None, None)], method="highs")
    if res.status != 0:  # a finite matrix game always has a solution; this is a solver failure
        raise DefdropError(f"minimax LP failed: {res.message}")
    return res.x[:m], -res.ineqlin.marginals


def _nashpy(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from nashpy.linalg.minimax import linear_program
    return linear_program(A), linear_program(-A.T)


def minimax(A: np.ndarray, method: str = "highs") -> Equilibrium:
    """Solve the zero-sum game with defender payoff matrix ``A`` (the attacker's is ``-A``).

    ``defender_value`` is the value v of the game for the defender; ``attacker_value`` is -v.
    """
    if method not in METHODS:
        raise DefdropError(f"minimax method {method!r}; choose one of {', '.join(METHODS)}")
    A = np.asarray(A, dtype=float)
    x, y = (_highs if method == "highs" else _nashpy)(A)
    return Equilibrium.from_profile(A, -A, x, y, method=f"minimax LP ({method})", params={"lp": method})


def pure_maximin(A: np.ndarray) -> tuple[int, float]:
    """The best single row when the attacker answers it with its worst column: argmax_i min_j A_ij and that min."""
    worst = np.asarray(A, dtype=float).min(axis=1)
    i = int(np.argmax(worst))
    return i, float(worst[i])
