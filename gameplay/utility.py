"""The players' utilities from a payoff table (the issue's definitions), as plain matrices.

Attacker:  U_a[i, j] = ASR[i, j] - mu * L2[i, j]          (perceptible perturbations cost the attacker)
Defender:  U_d[i, j] = -ASR[i, j] - lambda * drop_i        (drop_i = reference accuracy - accuracy of row i)

or, with the paper's accuracy constraint, only the rows with drop_i <= epsilon ("does not exceed epsilon") enter.
L2 is the mean distortion of successful examples; a cell with none (NaN) costs nothing. The game is zero-sum
exactly when mu = 0 and lambda = 0 (then U_d = -U_a); otherwise general-sum.
"""
from __future__ import annotations

import numpy as np

from gameplay.table import PayoffTable
from payoffs.errors import DefdropError


def utilities(table: PayoffTable, mu: float = 0.0, lam: float = 0.0,
              asr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(U_d, U_a) over all of the table's rows; ``asr`` replaces the table's ASR (a resample)."""
    asr = table.asr if asr is None else asr
    l2 = np.nan_to_num(table.l2_mean, nan=0.0)
    attacker = asr - mu * l2 if mu else asr.copy()
    defender = -asr - lam * table.accuracy_drop[:, None] if lam else -asr
    return defender, attacker


def feasible_rows(table: PayoffTable, max_accuracy_drop: float | None) -> np.ndarray:
    """Indices of the defender strategies whose accuracy drop does not exceed ``max_accuracy_drop``."""
    if max_accuracy_drop is None:
        return np.arange(len(table.defenders))
    # 1e-12: a drop of exactly epsilon computed as 0.99 - 0.98 = 0.01000000000000001 does not exceed it.
    return np.flatnonzero(table.accuracy_drop <= max_accuracy_drop + 1e-12)


def check_parameters(max_accuracy_drop: float | None, mu: float, lam: float) -> None:
    for name, value in (("max accuracy drop", max_accuracy_drop), ("mu", mu), ("lambda", lam)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise DefdropError(f"{name} {value} must be a finite number >= 0")
    if max_accuracy_drop is not None and max_accuracy_drop >= 1:
        raise DefdropError(f"max accuracy drop {max_accuracy_drop:g} must be below 1 (it is a fraction, "
                           "e.g. 0.01 for one percentage point)")
