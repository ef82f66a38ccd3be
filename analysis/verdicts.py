"""Every verdict the report prints, and every threshold behind one, in one place.

A verdict is one of :data:`AGREES`, :data:`DISAGREES`, :data:`INCONCLUSIVE`, decided by an interval at the one
confidence level :data:`LEVEL` (the level of the payoff table's own intervals); where two of our estimates are
compared, by the interval of their difference (:func:`gameplay.images.difference`: paired over test images when
the table's per-image data is there, otherwise the two standard errors combined as if independent). There are
three rules:

- **Against a published value** (:func:`against_value`): ours *agrees* when our whole interval lies within
  :data:`AGREEMENT_MARGIN` of the paper's value, *disagrees* when it lies entirely beyond that margin, and is
  *inconclusive* otherwise. The paper's numbers come without intervals and are taken as exact; the margin is
  what "the same result" means here. A paper value merely inside a wide interval is not agreement.
- **A sign the paper predicts** (:func:`against_sign`): for a difference or slope the paper says is positive
  (negative), *agrees* when the interval lies above (below) 0, *disagrees* when it lies entirely on the other
  side (touching 0 included: the predicted effect is then shown absent), *inconclusive* when it straddles 0.
- **A rise that must stay small** (:func:`below_margin`): the adaptive attacker's ASR minus the paper attacker's
  on the same defender. The defense *holds up* (verdict *agrees*: the paper's reported strength survives) only
  when the interval of the rise lies below :data:`ADAPTIVE_RISE_MARGIN`; it *does not survive* (*disagrees*)
  when the interval lies above it; otherwise *inconclusive*.
"""
from __future__ import annotations

import math

from scipy import stats as sps

LEVEL = 0.95
"""Confidence level of every interval a verdict reads (the payoff table's intervals are 95%)."""
AGREEMENT_MARGIN = 0.05
"""Our value agrees with a published one when our interval lies within 5 percentage points of it."""
ADAPTIVE_RISE_MARGIN = 0.05
"""A rise in ASR of 5 percentage points or more from the paper's attacker to the adaptive one matters."""
ALPHA = 1.0 - LEVEL
"""Significance level of the permutation tests that go with an interval (gradient variance vs ASR)."""

AGREES, DISAGREES, INCONCLUSIVE = "agrees", "disagrees", "inconclusive"
VERDICTS = (AGREES, DISAGREES, INCONCLUSIVE)


def z_value(level: float = LEVEL) -> float:
    """The normal quantile of a two-sided interval at ``level`` (1.96 at 95%)."""
    return float(sps.norm.ppf(0.5 + level / 2.0))


def _unknown(*values: float) -> bool:
    return any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values)


def against_value(low: float, high: float, value: float, margin: float = AGREEMENT_MARGIN) -> str:
    """Our interval [low, high] against a published ``value`` (see the module docstring)."""
    if _unknown(low, high, value):
        return INCONCLUSIVE
    if value - margin < low and high < value + margin:
        return AGREES
    if low >= value + margin or high <= value - margin:
        return DISAGREES
    return INCONCLUSIVE


def against_sign(low: float, high: float, expected: int) -> str:
    """The interval of a quantity the paper predicts to be positive (``expected`` = +1) or negative (-1)."""
    if _unknown(low, high):
        return INCONCLUSIVE
    lo, hi = (low, high) if expected > 0 else (-high, -low)
    if lo > 0:
        return AGREES
    if hi <= 0:
        return DISAGREES
    return INCONCLUSIVE


def below_margin(low: float, high: float, margin: float = ADAPTIVE_RISE_MARGIN) -> str:
    """The interval of a rise that must stay below ``margin`` (the adaptive attacker's)."""
    if _unknown(low, high):
        return INCONCLUSIVE
    if high < margin:
        return AGREES
    if low > margin:
        return DISAGREES
    return INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """A set of checks: agrees when every one agrees, disagrees when any disagrees, otherwise inconclusive.

    (Each part is decided at :data:`LEVEL`; "agrees" needs all parts, so its error does not grow with their
    number, while a lone "disagrees" among many parts is more likely by chance than one check's.)
    """
    if not verdicts:
        return INCONCLUSIVE
    if all(v == AGREES for v in verdicts):
        return AGREES
    if any(v == DISAGREES for v in verdicts):
        return DISAGREES
    return INCONCLUSIVE


def level_text() -> str:
    return f"{round(100 * LEVEL)}%"
