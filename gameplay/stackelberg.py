"""Strong Stackelberg equilibrium: the defender commits to a mixed strategy, the attacker observes it and answers.

Conitzer and Sandholm, "Computing the optimal strategy to commit to" (EC 2006), the multiple-LPs method: for each
attacker pure strategy j, find the commitment that is best for the defender among those to which j is a best
response,

    max_x  sum_i x_i A_ij   s.t.   sum_i x_i (B_ik - B_ij) <= 0 for all k,   sum_i x_i = 1,   x >= 0,

and keep the best j over the feasible LPs. Ties in the attacker's best response are broken in the defender's
favour (the *strong* equilibrium). A deployed defense is a commitment: the attacker can probe the model and learn
the distribution of r' (not the per-query draws), which is exactly this model. On zero-sum games its value equals
the minimax value.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from gameplay.equilibrium import Equilibrium
from payoffs.errors import DefdropError


def _commitment_lp(A: np.ndarray, B: np.ndarray, j: int) -> tuple[float, np.ndarray] | None:
    m, _ = A.shape
    a_ub = (B - B[:, [j]]).T  # row k: x . (B_k - B_j) <= 0
    res = linprog(-A[:, j], A_ub=a_ub, b_ub=np.zeros(a_ub.shape[0]), A_eq=np.ones((1, m)), b_eq=[1.0],
                  bounds=[(0, None)] * m, method="highs")
    if res.status == 2:  # infeasible: j is never the attacker's best response
        return None
    if res.status != 0:
        raise DefdropError(f"Stackelberg LP for attacker column {j} failed: {res.message}")
    return -float(res.fun), res.x


def stackelberg(A: np.ndarray, B: np.ndarray) -> Equilibrium:
    """The defender's optimal commitment (rows, payoffs ``A``) against a best-responding attacker (``B``).

    ``params["follower"]`` is the attacker column played and ``params["lps"]`` how many LPs were solved (columns
    whose best possible defender payoff cannot beat the incumbent are skipped, which does not change the answer).
    """
    A = np.asarray(A, dtype=float)
    B = np.asarray(B, dtype=float)
    best: tuple[float, int, np.ndarray] | None = None
    solved = 0
    for j in np.argsort(-A.max(axis=0), kind="stable"):
        if best is not None and A[:, j].max() <= best[0]:
            break  # the LP's objective is at most max_i A_ij: no later column can win
        out = _commitment_lp(A, B, int(j))
        solved += 1
        if out is not None and (best is None or out[0] > best[0] + 1e-12):
            best = (out[0], int(j), out[1])
    if best is None:  # cannot happen: some column is a best response to every x
        raise DefdropError("Stackelberg: no attacker column is ever a best response (solver failure)")
    _, j, x = best
    y = np.zeros(A.shape[1])
    y[j] = 1.0
    return Equilibrium.from_profile(A, B, x, y, method="strong Stackelberg (Conitzer-Sandholm multiple LPs)",
                                    params={"follower": j, "lps": solved}, leader=True)
