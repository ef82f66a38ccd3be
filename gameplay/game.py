"""The attacker-defender game: one facade over the solvers, like ``nashpy.Game``.

Defender strategies (a defense on a model: ``none``, ``dropout[r'=...]``, ``sap[...]``) are the rows, attacker
strategies the columns. Build it from two matrices, or from a payoff table::

    game = Game.from_payoff_table(read_payoff_csv("payoff.csv"), max_accuracy_drop=0.01)
    game.kind                     # "zero-sum" (mu = lambda = 0) or "general-sum"
    game.minimax()                # Equilibrium: the defender's optimal mix over r' and the value
    game.algorithm1()             # the paper's rate for every attacker
    game.nash(); game.stackelberg(); game.best_responses(); game.robustness(samples=200)

Every method delegates to a pure function over plain arrays (``gameplay.minimax``, ``.nash``, ``.stackelberg``,
``.best_response``, ``.algorithm1``, ``.robustness``); utilities are defined in ``gameplay.utility``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd

from gameplay.algorithm1 import Algorithm1Row, Algorithm1Table, algorithm1_table
from gameplay.best_response import BestResponses, best_responses
from gameplay.equilibrium import Equilibrium
from gameplay.minimax import minimax
from gameplay.nash import NashResult, nash_equilibria
from gameplay.regret import DEFAULT_EPS, is_equilibrium
from gameplay.robustness import Robustness, robustness
from gameplay.stackelberg import stackelberg
from gameplay.table import PayoffTable, payoff_table_from_frame, require_game
from gameplay.utility import check_parameters, feasible_rows, utilities
from payoffs.errors import DefdropError


class Game:
    """A bimatrix game: ``defender_payoffs`` A (rows maximize) and ``attacker_payoffs`` B (columns maximize).

    ``attacker_payoffs`` defaults to -A (zero-sum). ``table``/``rows`` are set by :meth:`from_payoff_table`:
    the source table and which of its defender rows are in the game (those within the accuracy constraint).
    """

    def __init__(self, defender_payoffs: np.ndarray | Sequence, attacker_payoffs: np.ndarray | Sequence | None = None,
                 *, defender_labels: Sequence[str] | None = None, attacker_labels: Sequence[str] | None = None):
        A = np.array(defender_payoffs, dtype=float)
        B = -A if attacker_payoffs is None else np.array(attacker_payoffs, dtype=float)
        if A.ndim != 2 or A.shape != B.shape or A.size == 0:
            raise DefdropError(f"payoff matrices must be two non-empty matrices of one shape, got {A.shape} "
                               f"and {B.shape}")
        if not (np.isfinite(A).all() and np.isfinite(B).all()):
            raise DefdropError("payoff matrices must be finite (no NaN or infinity)")
        self.A, self.B = A, B
        m, n = A.shape
        self.defender_labels = (tuple(defender_labels) if defender_labels is not None
                                else tuple(f"d{i}" for i in range(m)))
        self.attacker_labels = (tuple(attacker_labels) if attacker_labels is not None
                                else tuple(f"a{j}" for j in range(n)))
        if len(self.defender_labels) != m or len(self.attacker_labels) != n:
            raise DefdropError(f"{len(self.defender_labels)} defender and {len(self.attacker_labels)} attacker "
                               f"labels for a {m} x {n} game")
        self.table: PayoffTable | None = None
        self.rows: np.ndarray = np.arange(m)
        self.params: dict = {"max_accuracy_drop": None, "mu": 0.0, "lam": 0.0}

    @classmethod
    def from_payoff_table(cls, table: PayoffTable | pd.DataFrame, *, max_accuracy_drop: float | None = None,
                          mu: float = 0.0, lam: float = 0.0) -> "Game":
        """The game of a payoff table: U_a = ASR - mu x (L2 paid per attack), U_d = -ASR - lambda drop
        (``gameplay.utility``), keeping only defender strategies within the accuracy limit: a drop below
        ``max_accuracy_drop``, the undefended rows always (``gameplay.rules``; None: all; a recipe model's drops are
        measured from the standard model of its r, ``gameplay.table``)."""
        if isinstance(table, pd.DataFrame):
            table = payoff_table_from_frame(table)
        require_game(table)
        check_parameters(max_accuracy_drop, mu, lam)
        rows = feasible_rows(table, max_accuracy_drop)
        if rows.size == 0:
            k = int(np.argmin(table.accuracy_drop))
            raise DefdropError(f"no defender strategy keeps the accuracy drop below {max_accuracy_drop:g}: the "
                               f"smallest is {table.accuracy_drop[k]:.4g} ({table.defenders[k].label})")
        A, B = utilities(table, mu, lam)
        game = cls(A[rows], B[rows], defender_labels=[table.defender_labels[i] for i in rows],
                   attacker_labels=table.attacker_labels)
        game.table, game.rows = table, rows
        game.params = {"max_accuracy_drop": max_accuracy_drop, "mu": float(mu), "lam": float(lam)}
        return game

    # ------------------------------------------------------------------ description
    @property
    def shape(self) -> tuple[int, int]:
        return self.A.shape

    @property
    def zero_sum(self) -> bool:
        return bool(np.allclose(self.A, -self.B, rtol=0.0, atol=1e-12))

    @property
    def kind(self) -> str:
        return "zero-sum" if self.zero_sum else "general-sum"

    @property
    def removed(self) -> tuple[str, ...]:
        """Defender strategies of the table left out by the accuracy constraint."""
        if self.table is None:
            return ()
        kept = set(self.rows.tolist())
        return tuple(d.label for i, d in enumerate(self.table.defenders) if i not in kept)

    def __repr__(self) -> str:
        m, n = self.shape
        return f"Game({self.kind}, {m} defender x {n} attacker strategies)"

    # ------------------------------------------------------------------ solution checks
    def is_equilibrium(self, x: Sequence[float], y: Sequence[float], eps: float = DEFAULT_EPS) -> bool:
        return is_equilibrium(self.A, self.B, np.asarray(x, dtype=float), np.asarray(y, dtype=float), eps)

    # ------------------------------------------------------------------ solvers
    def best_responses(self) -> BestResponses:
        return best_responses(self.A, self.B)

    def minimax(self, method: str = "highs") -> Equilibrium:
        """The defender's optimal mixed strategy and the value (zero-sum); on a general-sum game, its security
        strategy (max-min of its own utility), marked as such in ``method``."""
        eq = minimax(self.A, method)
        if self.zero_sum:
            return eq
        return replace(eq, method=eq.method.replace("minimax", "maximin security strategy (general-sum game):"),
                       attacker_value=float(eq.x @ self.B @ eq.y), params={**eq.params, "zero_sum": False})

    def nash(self, **options) -> NashResult:
        """Verified Nash equilibria; ``options`` go to :func:`gameplay.nash.nash_equilibria`."""
        return nash_equilibria(self.A, self.B, **options)

    def stackelberg(self) -> Equilibrium:
        return stackelberg(self.A, self.B)

    def _need_table(self, what: str) -> PayoffTable:
        if self.table is None:
            raise DefdropError(f"{what} needs a game built from a payoff table (Game.from_payoff_table)")
        return self.table

    def algorithm1(self, epsilon: float | None = None) -> Algorithm1Table:
        """The paper's Algorithm 1 for every attacker (``epsilon`` defaults to the game's max accuracy drop)."""
        table = self._need_table("Algorithm 1")
        epsilon = self.params["max_accuracy_drop"] if epsilon is None else epsilon
        if epsilon is None:
            raise DefdropError("Algorithm 1 needs the maximum accuracy drop epsilon (max_accuracy_drop)")
        check_parameters(epsilon, 0.0, 0.0)
        return algorithm1_table(table, epsilon)

    def algorithm1_for(self, attacker: str, epsilon: float | None = None) -> Algorithm1Row:
        """Algorithm 1 against one attacker strategy: the rate and that attacker's ASR there."""
        if attacker not in self.attacker_labels:
            raise DefdropError(f"no attacker strategy {attacker!r} in the game")
        return self.algorithm1(epsilon).for_attacker(attacker)

    def robustness(self, samples: int = 200, seed: int = 0) -> Robustness:
        table = self._need_table("the robustness analysis")
        return robustness(table, max_accuracy_drop=self.params["max_accuracy_drop"], mu=self.params["mu"],
                          lam=self.params["lam"], samples=samples, seed=seed)
