"""Pure best responses: the defender's best row against each attacker column, and the attacker's best column
against each defender row (ties kept, within a tolerance)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BestResponses:
    """``defender[j]``: the rows maximizing A[:, j] (first = lowest index); ``defender_value[j]`` = max_i A_ij.
    ``attacker[i]``: the columns maximizing B[i, :]; ``attacker_value[i]`` = max_j B_ij."""

    defender: tuple[tuple[int, ...], ...]
    defender_value: tuple[float, ...]
    attacker: tuple[tuple[int, ...], ...]
    attacker_value: tuple[float, ...]
    method: str = "pure best responses"

    @property
    def pure_equilibria(self) -> tuple[tuple[int, int], ...]:
        """Cells (i, j) where each is a best response to the other: the pure Nash equilibria."""
        return tuple((i, j) for j, rows in enumerate(self.defender) for i in rows if j in self.attacker[i])

    def to_dict(self) -> dict:
        return asdict(self)


def _argmaxes(M: np.ndarray, axis: int, tol: float) -> tuple[tuple[int, ...], ...]:
    best = M.max(axis=axis, keepdims=True)
    hits = M >= best - tol
    lines = hits.T if axis == 0 else hits
    return tuple(tuple(int(k) for k in np.flatnonzero(line)) for line in lines)


def best_responses(A: np.ndarray, B: np.ndarray, tol: float = 1e-12) -> BestResponses:
    A = np.asarray(A, dtype=float)
    B = np.asarray(B, dtype=float)
    return BestResponses(defender=_argmaxes(A, 0, tol), defender_value=tuple(float(v) for v in A.max(axis=0)),
                         attacker=_argmaxes(B, 1, tol), attacker_value=tuple(float(v) for v in B.max(axis=1)))
