"""Epsilon-regret: how much a player gains by deviating to its best pure strategy (the definition of equilibrium).

For mixed strategies x (defender, rows) and y (attacker, columns) of the bimatrix game (A, B):

    defender regret = max_i (A y)_i - x^T A y        attacker regret = max_j (x^T B)_j - x^T B y

(x, y) is an epsilon-Nash equilibrium when both regrets are at most epsilon. Pure best responses suffice: a
mixed deviation is an average of pure ones. Unlike nashpy's own check, which compares floats with ``==``,
this allows a tolerance scaled by the payoffs' magnitude.
"""
from __future__ import annotations

import numpy as np

DEFAULT_EPS = 1e-6


def regret(A: np.ndarray, B: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(defender regret, attacker regret) of the profile (x, y); both are >= 0 up to rounding."""
    Ay = A @ y
    xB = x @ B
    return float(Ay.max() - x @ Ay), float(xB.max() - xB @ y)


def tolerance(A: np.ndarray, B: np.ndarray, eps: float = DEFAULT_EPS) -> float:
    """``eps`` scaled by the payoffs' magnitude, so that rescaling a game does not change what passes."""
    return eps * max(1.0, float(np.abs(A).max(initial=0.0)), float(np.abs(B).max(initial=0.0)))


def is_equilibrium(A: np.ndarray, B: np.ndarray, x: np.ndarray, y: np.ndarray, eps: float = DEFAULT_EPS) -> bool:
    """True when (x, y) are probability vectors and neither player can gain more than eps (scaled) by deviating."""
    tol = tolerance(A, B, eps)
    for s in (x, y):
        if not np.all(np.isfinite(s)) or s.min() < -tol or abs(s.sum() - 1.0) > 1e-6:
            return False
    return max(regret(A, B, x, y)) <= tol


def as_strategy(v: np.ndarray) -> np.ndarray:
    """Clip solver rounding (tiny negatives) and renormalize to a probability vector."""
    v = np.clip(np.asarray(v, dtype=float), 0.0, None)
    v[v < 1e-12] = 0.0
    total = v.sum()
    return v / total if total > 0 else v
