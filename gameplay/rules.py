"""The rules every part of defdrop applies the same way: which attacker is *adaptive*, which adaptive attacker is
the designated one, and when a defender is *within the accuracy limit*. One definition each, used by the game,
Algorithm 1, the robustness analysis and the report.

Adaptive attacker. The paper's attacker (section 4.1, CleverHans defaults) takes one defender sample per gradient
(``eot`` = 1), judges success on that one sample (``success_test`` = ``single``) and asks for no confidence margin
(C&W's kappa = 0). An attacker that departs from it in any of these three ways targets the defense's randomness
and is *adaptive*: ``eot > 1`` or ``success_test == "expected"`` or ``kappa > 0`` (a missing kappa counts as 0).

Designated adaptive attacker. Where one adaptive attacker stands for all (the report's "does the defense hold up"
comparison), it is the strongest *by protocol*, fixed before any ASR is looked at: the ``expected`` success test
first, then the most EOT samples, then the largest kappa; ties go to the first in table order. Picking instead
the adaptive column with the highest measured ASR would bias the comparison upward (the maximum of noisy
estimates overstates the best one).

Accuracy limit. The paper's Algorithm 1 keeps walking while ``a > a_max - epsilon`` and its Tables 4-6 keep the
drop "<1%": a defender is within the limit when its accuracy drop ``a_max - a`` is *below* epsilon, strictly. A
drop that equals epsilon up to float rounding (:data:`ACCURACY_TOLERANCE`) is not below it. A model's undefended
rows (``none``, or dropout with r' = 0) are always within: they are Algorithm 1's starting point (line 2), where
nothing is measured. A model trained by another recipe (adversarial training, distillation) whose table also holds
the standard model of its r is measured from that model's undefended accuracy, and its own r' = 0 row is then a
defense like any other (:mod:`gameplay.table`).

Default accuracy budget. Where the user gives no epsilon, :data:`DEFAULT_MAX_ACCURACY_DROP` applies: the paper's
"< 1% test accuracy drop" (section 4.2, Tables 4-6). A recommendation is never made without an accuracy limit
unless the user lifts it explicitly (``defdrop solve --max-accuracy-drop none``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

DEFAULT_MAX_ACCURACY_DROP = 0.01
"""The default epsilon: the paper's "< 1% test accuracy drop" (section 4.2, Tables 4-6), a fraction (one point)."""
DEFAULT_BUDGET_SOURCE = "the paper's \"< 1% accuracy drop\", section 4.2"
"""Where the default epsilon comes from, as reports cite it."""

ACCURACY_TOLERANCE = 1e-12
"""Float rounding allowed when comparing an accuracy drop with epsilon (0.99 - 0.98 = 0.010000000000000009)."""


def is_adaptive(eot, success_test, kappa=0.0):
    """True where an attacker departs from the paper's (``eot > 1``, the ``expected`` test, or kappa > 0).

    Works on scalars and, elementwise, on arrays or pandas Series (NaN kappa counts as 0).
    """
    k = np.nan_to_num(np.asarray(kappa, dtype=float), nan=0.0)
    out = (np.asarray(eot, dtype=float) > 1) | (np.asarray(success_test, dtype=object) == "expected") | (k > 0)
    return bool(out) if np.ndim(out) == 0 else out


def adaptive_strength(eot: float, success_test: str, kappa: float | None = 0.0) -> tuple[bool, float, float]:
    """The protocol's order of adaptive attackers (larger is stronger): expected test, then EOT, then kappa."""
    k = 0.0 if kappa is None or np.isnan(kappa) else float(kappa)
    return success_test == "expected", float(eot), k


def designated_adaptive(attackers: Sequence[tuple[float, str, float | None]]) -> int | None:
    """Index of the designated adaptive attacker among ``(eot, success_test, kappa)`` triples (None if none is
    adaptive). Decided by the protocol alone, never by a measured ASR."""
    best, key = None, None
    for i, (eot, test, kappa) in enumerate(attackers):
        if not is_adaptive(eot, test, 0.0 if kappa is None else kappa):
            continue
        k = adaptive_strength(eot, test, kappa)
        if key is None or k > key:
            best, key = i, k
    return best


def within_accuracy_limit(drop, epsilon: float):
    """Whether an accuracy drop is below epsilon (the paper's ``a > a_max - epsilon``); elementwise on arrays."""
    out = np.asarray(drop, dtype=float) < float(epsilon) - ACCURACY_TOLERANCE
    return bool(out) if np.ndim(out) == 0 else out


def is_undefended(defense: str, test_dropout: float) -> bool:
    """A model's undefended row: the ``none`` defense or test dropout with r' = 0."""
    return defense == "none" or (defense == "dropout" and test_dropout == 0.0)
