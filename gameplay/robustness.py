"""How sure is the decision? Resample the payoff table within its uncertainty, re-solve, count the answers.

Each cell's ASR is drawn from Normal(asr, se) clipped to [0, 1], se being the cell's bootstrap standard error
(or, where the table has none, its 95% interval's width / 3.92); each defender's clean accuracy likewise from
its interval. The undefended reference accuracy (hence every accuracy drop, hence the accuracy constraint) is
recomputed from the draw. Each draw is solved by minimax (the defender's optimal mix, or its security strategy
in a general-sum game) and by Algorithm 1; we count how often each defender strategy is the choice (the mix's
largest weight; Algorithm 1's rate) and report quantiles of the game's value and of the worst-case ASR.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from gameplay.algorithm1 import algorithm1_table
from gameplay.minimax import minimax
from gameplay.table import PayoffTable
from gameplay.utility import feasible_rows, utilities
from payoffs.errors import DefdropError

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class Robustness:
    """Counts over ``samples`` resampled tables (``infeasible`` of them left no defender strategy within the
    accuracy constraint and are not counted). ``value``: minimax value for the defender (= -worst-case ASR when
    mu = lambda = 0); ``worst_asr``: the highest expected ASR any attacker column gets against the draw's mix."""

    samples: int
    seed: int
    minimax_choice: tuple[tuple[str, int], ...]
    minimax_weight: tuple[tuple[str, float], ...]
    algorithm1_choice: tuple[tuple[str, int], ...] | None
    value: tuple[float, ...]
    worst_asr: tuple[float, ...]
    infeasible: int = 0
    method: str = "parametric resampling of ASR and accuracy, re-solved by minimax and Algorithm 1"

    @property
    def solved(self) -> int:
        return self.samples - self.infeasible

    def quantiles(self, which: str = "worst_asr") -> dict[str, float]:
        values = np.asarray(getattr(self, which), dtype=float)
        if values.size == 0:
            return {}
        return {f"q{round(q * 100):02d}": float(np.quantile(values, q)) for q in QUANTILES}

    def share(self, label: str, which: str = "minimax_choice") -> float:
        counts = dict(getattr(self, which) or ())
        return counts.get(label, 0) / self.solved if self.solved else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["value_quantiles"] = self.quantiles("value")
        out["worst_asr_quantiles"] = self.quantiles("worst_asr")
        return out


def resample(mean: np.ndarray, se: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of Normal(mean, se) clipped to [0, 1] (se = 0 gives the mean)."""
    return np.clip(mean + rng.standard_normal(np.shape(mean)) * se, 0.0, 1.0)


def robustness(table: PayoffTable, *, max_accuracy_drop: float | None = None, mu: float = 0.0, lam: float = 0.0,
               samples: int = 200, seed: int = 0) -> Robustness:
    if samples < 1:
        raise DefdropError(f"robustness samples {samples} must be at least 1")
    rng = np.random.default_rng(seed)
    labels = table.defender_labels
    top: Counter[str] = Counter()
    alg1: Counter[str] = Counter()
    weight = np.zeros(len(labels))
    values: list[float] = []
    worst: list[float] = []
    infeasible = 0
    for _ in range(samples):
        draw = table.with_values(resample(table.asr, table.asr_se, rng),
                                 resample(table.accuracy, table.accuracy_se, rng))
        if max_accuracy_drop is not None:
            a1 = algorithm1_table(draw, max_accuracy_drop)
            alg1[a1.defender or "r'=0 (no undefended row)"] += 1
        rows = feasible_rows(draw, max_accuracy_drop)
        if rows.size == 0:
            infeasible += 1
            continue
        A, _ = utilities(draw, mu, lam)
        eq = minimax(A[rows])
        x = eq.x
        top[labels[rows[int(np.argmax(x))]]] += 1
        weight[rows] += x
        values.append(eq.defender_value)
        worst.append(float((x @ draw.asr[rows]).max()))
    solved = samples - infeasible
    mean_weight = weight / solved if solved else weight
    return Robustness(samples=samples, seed=seed, minimax_choice=tuple(top.most_common()),
                      minimax_weight=tuple((labels[i], float(mean_weight[i])) for i in np.argsort(-mean_weight)
                                           if mean_weight[i] > 0),
                      algorithm1_choice=tuple(alg1.most_common()) if max_accuracy_drop is not None else None,
                      value=tuple(values), worst_asr=tuple(worst), infeasible=infeasible)
