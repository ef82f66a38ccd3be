"""The players' utilities from a payoff table (the issue's definitions), as plain matrices.

Attacker:  U_a[i, j] = ASR[i, j] - mu * L2paid[i, j]     (perceptible perturbations cost the attacker)
Defender:  U_d[i, j] = -ASR[i, j] - lambda * drop_i       (drop_i = reference accuracy - accuracy of row i)

or, with the paper's accuracy constraint, only the rows within the limit enter (:mod:`gameplay.rules`: a drop
below epsilon, the undefended rows always; ``drop_i`` of a model trained by another recipe is measured from the
standard model of its r when the table has one, :mod:`gameplay.table`).

``L2paid`` is the distortion the attacker actually pays per attack, on average over *all* its attacks: the table's
``l2_all_mean`` (mean L2 of every example the attack returned: a failed C&W attack returns x unchanged and pays 0,
FGSM pays its step whether it succeeds or not). Tables without that column fall back to
``asr_majority * l2_mean`` (the majority-successful share times their mean L2), which counts a failed attack as
paying nothing (right for C&W, an undercount for FGSM); a cell with no majority-successful example then pays 0
by that rule, not by turning NaN into 0. mu is the price of one unit of L2 in units of ASR: a success is worth
its distortion while mu * (L2 of a success) < 1, and then an attacker that fails everywhere (utility 0) is never
preferred over one that succeeds.

The defender's utility does not count L2. The paper (section 4.2) counts a larger L2 as a stronger defense,
because larger distortions are easier for a human to notice; this game has no detector, so it leaves that credit
out: distortion enters only as the attacker's cost (mu). The game is zero-sum exactly when mu = 0 and lambda = 0
(then U_d = -U_a); otherwise general-sum.
"""
from __future__ import annotations

import numpy as np

from gameplay.rules import within_accuracy_limit
from gameplay.table import PayoffTable
from payoffs.errors import DefdropError

L2_PAID_COLUMN = "l2_all_mean"


def l2_paid(table: PayoffTable) -> tuple[np.ndarray, str]:
    """(the expected L2 each attack pays, per cell; which rule gave it). Raises when a cell's cost is unknown."""
    if table.l2_all_mean is not None and np.isfinite(table.l2_all_mean).all():
        return table.l2_all_mean, f"{L2_PAID_COLUMN} (mean L2 over all attacks)"
    if table.asr_majority is None:
        raise DefdropError(f"payoff table {table.source}: the attacker's cost mu needs the column {L2_PAID_COLUMN} "
                           "(or asr_majority with l2_mean)")
    share, l2 = table.asr_majority, table.l2_mean
    paid = np.where(share == 0, 0.0, share * l2)
    bad = ~np.isfinite(paid)
    if table.l2_all_mean is not None:  # the column is there but some cells lack it: fill those by the fallback
        paid = np.where(np.isfinite(table.l2_all_mean), table.l2_all_mean, paid)
        bad = ~np.isfinite(paid)
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise DefdropError(f"payoff table {table.source}: cell ({table.defenders[i].label}, "
                           f"{table.attackers[j].label}) has majority-successful attacks but no L2, so its cost "
                           "mu x L2 is unknown")
    return paid, "asr_majority x l2_mean (failed attacks counted as paying nothing)"


def utilities(table: PayoffTable, mu: float = 0.0, lam: float = 0.0,
              asr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(U_d, U_a) over all of the table's rows; ``asr`` replaces the table's ASR (a resample)."""
    asr = table.asr if asr is None else asr
    attacker = asr - mu * l2_paid(table)[0] if mu else asr.copy()
    defender = -asr - lam * table.accuracy_drop[:, None] if lam else -asr
    return defender, attacker


def feasible_rows(table: PayoffTable, max_accuracy_drop: float | None) -> np.ndarray:
    """Indices of the defender strategies within the accuracy limit (:mod:`gameplay.rules`)."""
    if max_accuracy_drop is None:
        return np.arange(len(table.defenders))
    plain = np.array([d.always_within for d in table.defenders])
    return np.flatnonzero(plain | within_accuracy_limit(table.accuracy_drop, max_accuracy_drop))


def check_parameters(max_accuracy_drop: float | None, mu: float, lam: float) -> None:
    for name, value in (("max accuracy drop", max_accuracy_drop), ("mu", mu), ("lambda", lam)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise DefdropError(f"{name} {value} must be a finite number >= 0")
    if max_accuracy_drop is not None and max_accuracy_drop >= 1:
        raise DefdropError(f"max accuracy drop {max_accuracy_drop:g} must be below 1 (it is a fraction, "
                           "e.g. 0.01 for one percentage point)")
