"""Nash equilibria of the general-sum game, by nashpy, each one verified by the epsilon-regret check.

Small games (few support pairs) use support enumeration (Nisan et al. 2007, Algorithm 3.4) over nashpy's
powerset of supports, *all* pairs of them (unequal sizes by least squares), so degenerate games give points of
their equilibrium components too. nashpy's own indifference solver accepts a solution only when every entry is
``>= 0`` exactly, so a -1e-17 from rounding loses equilibria (on a random 6 x 6 game it finds 4 of the 5 that
vertex enumeration finds); ours allows a tolerance and lets the regret check decide. Larger games use
Lemke-Howson (Algorithm 3.6) from several initially dropped labels, each run under a time limit. nashpy's
Lemke-Howson pivots floats "integer-style" (rows multiplied by the pivot, never divided), so the magnitudes
change doubly exponentially: on a random 30 x 30 game they underflow to 1e-229 within 30 pivots and the path
then never ends. We run nashpy's lexicographic tableau with ordinary (scaled) pivoting,
which takes the same pivots (rows differ only by positive factors) and stays finite, and check a deadline at
every pivot.

nashpy's own equilibrium test compares floats with ``==``; here every candidate is checked with
``gameplay.regret.is_equilibrium`` instead, and what fails is dropped and counted. A game is *degenerate* when
some mixed strategy with support size k has more than k pure best responses; its equilibria can form continua.
We detect the usual signs (a pure strategy with tied best responses, an equilibrium with supports of different
sizes, an even number of equilibria from a complete enumeration, two equilibria joined by a segment of
equilibria) and report them rather than pretending the list is complete.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Iterator

import numpy as np
from nashpy.algorithms.support_enumeration import powerset
from nashpy.linalg import TableauLex

from gameplay.equilibrium import Equilibrium
from gameplay.regret import DEFAULT_EPS, is_equilibrium, tolerance
from payoffs.errors import DefdropError

METHODS = ("auto", "support_enumeration", "lemke_howson")


@dataclass(frozen=True)
class NashResult:
    """The verified equilibria and how they were found.

    ``complete``: support enumeration ran over every support pair, so a nondegenerate game has no other equilibria
    (a degenerate one may have continua through the listed points). ``rejected``: candidates that failed the regret
    check. ``labels``/``timed_out``: Lemke-Howson's initially dropped labels tried, and those that hit the limit.
    """

    equilibria: tuple[Equilibrium, ...]
    method: str
    complete: bool
    degenerate: bool
    degeneracy: tuple[str, ...] = ()
    rejected: int = 0
    labels: tuple[int, ...] = ()
    timed_out: tuple[int, ...] = ()
    eps: float = DEFAULT_EPS
    seconds: float = 0.0
    params: dict = field(default_factory=dict, compare=False)

    def best_for_defender(self) -> Equilibrium | None:
        return max(self.equilibria, key=lambda e: e.defender_value, default=None)

    def to_dict(self) -> dict:
        return asdict(self)


class _ScaledTableau(TableauLex):
    """nashpy's lexicographic tableau with the pivot row's multiple subtracted (a division) instead of every other
    row multiplied by the pivot element. Ratios and lexicographic tie-breaks are invariant to the positive row
    factors by which the two differ, so the path is the same; exact zeros in basic columns are kept exact."""

    def _pivot(self, column_index: int, pivot_row_index: int) -> None:
        T = self._tableau
        p = T[pivot_row_index, column_index]
        factors = T[:, column_index] / p
        factors[pivot_row_index] = 0.0
        T -= np.outer(factors, T[pivot_row_index])
        T[:, column_index] = 0.0
        T[pivot_row_index, column_index] = p


def _tableau(payoffs: np.ndarray, shifted: bool) -> _ScaledTableau:
    if payoffs.min() <= 0:  # Lemke-Howson needs positive payoffs; a constant shift keeps the equilibria
        payoffs = payoffs + abs(payoffs.min()) + 1
    slack = np.eye(payoffs.shape[0])
    ones = np.ones((payoffs.shape[0], 1))
    parts = [slack, payoffs, ones] if shifted else [payoffs, slack, ones]
    return _ScaledTableau(np.concatenate(parts, axis=1).astype(float))


def lemke_howson(A: np.ndarray, B: np.ndarray, label: int, time_limit: float = 0.25,
                 max_pivots: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One Lemke-Howson path from the artificial equilibrium, dropping ``label`` (0..m+n-1) first.

    Raises ``TimeoutError`` past ``time_limit`` seconds or ``max_pivots`` pivots (default 50 (m + n)).
    """
    m, n = A.shape
    deadline = time.perf_counter() + time_limit
    max_pivots = max_pivots or 50 * (m + n)
    col_t = _tableau(np.asarray(A, dtype=float), shifted=True)
    row_t = _tableau(np.asarray(B, dtype=float).T, shifted=False)
    full = col_t.labels
    tableaux = (row_t, col_t) if label in row_t.non_basic_variables else (col_t, row_t)
    entering = label
    for step in range(max_pivots):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"label {label}: over {time_limit:g} s")
        tableau = tableaux[step % 2]
        entering = tableau.pivot_and_drop_label(entering)
        if not np.isfinite(tableau._tableau).all():
            raise FloatingPointError(f"label {label}: tableau overflow")
        if col_t.non_basic_variables | row_t.non_basic_variables == full:
            x = row_t.to_strategy(col_t.non_basic_variables)
            y = col_t.to_strategy(row_t.non_basic_variables)
            return np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    raise TimeoutError(f"label {label}: over {max_pivots} pivots")


def _indifferent(M: np.ndarray, tol: float) -> np.ndarray | None:
    """A probability vector z with M z constant (the opponent indifferent over M's rows), or None."""
    r, c = M.shape
    K = np.zeros((r + 1, c + 1))
    K[:r, :c] = M
    K[:r, c] = -1.0
    K[r, :c] = 1.0
    rhs = np.zeros(r + 1)
    rhs[r] = 1.0
    try:
        sol = np.linalg.solve(K, rhs) if r == c else None
    except np.linalg.LinAlgError:
        sol = None
    if sol is None:
        sol = np.linalg.lstsq(K, rhs, rcond=None)[0]
        if np.abs(K @ sol - rhs).max() > 1e-9:
            return None
    z = sol[:c]
    return z if np.all(np.isfinite(z)) and z.min() >= -tol else None


def support_enumeration(A: np.ndarray, B: np.ndarray, tol: float = 1e-10
                        ) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[int, ...], tuple[int, ...]]]:
    """Candidate profiles (x, y, support of x, support of y) from every pair of supports; not yet verified."""
    m, n = A.shape
    col_supports = [s for s in powerset(n) if s]
    for row_support in (s for s in powerset(m) if s):
        rows = list(row_support)
        for J in col_supports:
            cols = list(J)
            y_j = _indifferent(A[np.ix_(rows, cols)], tol)  # y makes the defender indifferent over the row support
            if y_j is None:
                continue
            x_i = _indifferent(B[np.ix_(rows, cols)].T, tol)  # x makes the attacker indifferent over J
            if x_i is None:
                continue
            x = np.zeros(m)
            y = np.zeros(n)
            x[rows] = x_i
            y[cols] = y_j
            yield x, y, row_support, J


def _degeneracy(A: np.ndarray, B: np.ndarray, eqs: list[Equilibrium], complete: bool, eps: float) -> list[str]:
    reasons: list[str] = []
    tol = tolerance(A, B, eps)
    rows_tied = [i for i in range(A.shape[0]) if np.sum(B[i] >= B[i].max() - tol) > 1]
    cols_tied = [j for j in range(A.shape[1]) if np.sum(A[:, j] >= A[:, j].max() - tol) > 1]
    if rows_tied:
        reasons.append(f"the attacker has tied best responses to {len(rows_tied)} defender pure strategies "
                       f"(first: row {rows_tied[0]})")
    if cols_tied:
        reasons.append(f"the defender has tied best responses to {len(cols_tied)} attacker pure strategies "
                       f"(first: column {cols_tied[0]})")
    unequal = [k for k, e in enumerate(eqs) if len(e.support("defender")) != len(e.support("attacker"))]
    if unequal:
        e = eqs[unequal[0]]
        reasons.append(f"equilibrium {unequal[0]} has supports of different sizes "
                       f"({len(e.support('defender'))} and {len(e.support('attacker'))})")
    if complete and eqs and len(eqs) % 2 == 0:
        reasons.append(f"complete support enumeration found an even number ({len(eqs)}) of equilibria")
    for a, b in combinations(range(min(len(eqs), 40)), 2):
        mid_x = (eqs[a].x + eqs[b].x) / 2
        mid_y = (eqs[a].y + eqs[b].y) / 2
        if is_equilibrium(A, B, mid_x, mid_y, eps):
            reasons.append(f"equilibria {a} and {b} are joined by a segment of equilibria (a continuum)")
            break
    return reasons


def nash_equilibria(A: np.ndarray, B: np.ndarray, *, method: str = "auto", max_support_pairs: int = 4096,
                    labels: list[int] | None = None, label_time_limit: float = 0.25, time_limit: float = 3.0,
                    eps: float = DEFAULT_EPS) -> NashResult:
    """Verified Nash equilibria of the bimatrix game (defender ``A`` on rows, attacker ``B`` on columns).

    ``auto`` enumerates supports when there are at most ``max_support_pairs`` support pairs ((2^m - 1)(2^n - 1))
    and runs Lemke-Howson from ``labels`` (default: all m + n) otherwise, each path under ``label_time_limit``
    seconds and all of them under ``time_limit``. Equilibria closer than 1e-6 are merged.
    """
    if method not in METHODS:
        raise DefdropError(f"Nash method {method!r}; choose one of {', '.join(METHODS)}")
    A = np.asarray(A, dtype=float)
    B = np.asarray(B, dtype=float)
    m, n = A.shape
    start = time.perf_counter()
    pairs = (2.0 ** m - 1) * (2.0 ** n - 1)
    if method == "auto":
        method = "support_enumeration" if pairs <= max_support_pairs else "lemke_howson"
    found: list[Equilibrium] = []
    rejected = 0
    tried: list[int] = []
    timed_out: list[int] = []

    def consider(x: np.ndarray, y: np.ndarray, how: str, params: dict) -> None:
        nonlocal rejected
        if not is_equilibrium(A, B, np.asarray(x, dtype=float), np.asarray(y, dtype=float), eps):
            rejected += 1
            return
        eq = Equilibrium.from_profile(A, B, x, y, method=how, params=params)
        if not any(eq.close_to(e) for e in found):
            found.append(eq)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nashpy's degeneracy warnings: we report our own
        if method == "support_enumeration":
            for x, y, sx, sy in support_enumeration(A, B):
                consider(x, y, "support enumeration", {"supports": [list(map(int, sx)), list(map(int, sy))]})
            complete = True
        else:
            deadline = start + time_limit
            for label in (range(m + n) if labels is None else labels):
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                tried.append(int(label))
                try:
                    x, y = lemke_howson(A, B, int(label), time_limit=min(label_time_limit, left))
                except TimeoutError:
                    timed_out.append(int(label))
                    continue
                except (ValueError, FloatingPointError, ZeroDivisionError, IndexError):
                    rejected += 1
                    continue
                if x.shape != (m,) or y.shape != (n,):
                    rejected += 1
                    continue
                consider(x, y, "Lemke-Howson (nashpy tableau)", {"dropped_label": int(label)})
            complete = False
    reasons = _degeneracy(A, B, found, complete, eps)
    return NashResult(equilibria=tuple(found), method=method.replace("_", " "), complete=complete,
                      degenerate=bool(reasons), degeneracy=tuple(reasons), rejected=rejected, labels=tuple(tried),
                      timed_out=tuple(timed_out), eps=eps, seconds=time.perf_counter() - start,
                      params={"max_support_pairs": max_support_pairs, "label_time_limit": label_time_limit,
                              "time_limit": time_limit})
