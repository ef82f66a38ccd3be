"""How sure is the decision? Resample the payoff table within its uncertainty, re-solve, count the answers.

With the table's per-image data (the sidecar ``X.images.npz``, :mod:`gameplay.images`) each draw is a paired
bootstrap over test images: every test image gets one Poisson(1) weight, applied to every ASR cell and every
defender's clean accuracy, so a hard image is hard for every defender in the same draw, as it was when measured.
Without it (old or hand-made tables) the draw is parametric and ignores that pairing: each cell's ASR from
Normal(asr, se) clipped to [0, 1], se being the cell's standard error (or, where the table has none, its 95%
interval's width / 3.92), each defender's clean accuracy likewise from its interval, all independent;
``Robustness.paired`` and ``method`` say which was used, and why.

The undefended reference accuracy (hence every accuracy drop, hence the accuracy constraint) is recomputed from
the draw. Each draw is solved by minimax (the defender's optimal mix, or its security strategy in a general-sum
game) and by Algorithm 1; we count how often each defender strategy is the choice (the mix's largest weight;
Algorithm 1's rate) and report quantiles of the game's value and of the worst-case ASR.
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
    paired: bool = False

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


PAIRED_METHOD = ("paired bootstrap over test images (one Poisson weight per image for every cell and accuracy), "
                 "re-solved by minimax and Algorithm 1")
PARAMETRIC_METHOD = ("parametric resampling of ASR and accuracy, cells drawn independently (pairing by image "
                     "ignored: {why}), re-solved by minimax and Algorithm 1")


def table_draws(table: PayoffTable, samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """``samples`` resampled (ASR (S, m, n), accuracy (S, m)) and whether they are paired over images."""
    m, n = table.shape
    if table.images is not None:
        images = table.images
        cells = images.cell_rows(list(table.cell_key.ravel()))
        accs = images.accuracy_rows([d.accuracy_key for d in table.defenders])
        asr, acc = images.resample(cells, accs, samples, rng)
        return asr.reshape(samples, m, n), acc, True
    asr, acc = np.empty((samples, m, n)), np.empty((samples, m))
    for k in range(samples):  # interleaved, as drawn before the paired bootstrap existed: same seed, same draws
        asr[k] = resample(table.asr, table.asr_se, rng)
        acc[k] = resample(table.accuracy, table.accuracy_se, rng)
    return asr, acc, False


def robustness(table: PayoffTable, *, max_accuracy_drop: float | None = None, mu: float = 0.0, lam: float = 0.0,
               samples: int = 200, seed: int = 0) -> Robustness:
    if samples < 1:
        raise DefdropError(f"robustness samples {samples} must be at least 1")
    rng = np.random.default_rng(seed)
    asr_draws, acc_draws, paired = table_draws(table, samples, rng)
    labels = table.defender_labels
    top: Counter[str] = Counter()
    alg1: Counter[str] = Counter()
    weight = np.zeros(len(labels))
    values: list[float] = []
    worst: list[float] = []
    infeasible = 0
    for asr, accuracy in zip(asr_draws, acc_draws):
        draw = table.with_values(asr, accuracy)
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
                      value=tuple(values), worst_asr=tuple(worst), infeasible=infeasible,
                      method=PAIRED_METHOD if paired else PARAMETRIC_METHOD.format(why=table.images_note),
                      paired=paired)
