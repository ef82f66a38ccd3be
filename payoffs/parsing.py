"""Parsing of comma-separated command-line lists, validated at the boundary."""
from __future__ import annotations

import math

from payoffs.errors import DefdropError


def parse_floats(text: str, what: str, low: float | None = None, high: float | None = None,
                 high_inclusive: bool = False) -> list[float]:
    """``"0,0.1,0.5"`` -> ``[0.0, 0.1, 0.5]``; every value checked against [low, high) (or [low, high])."""
    values: list[float] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise DefdropError(f"{what}: {part!r} is not a number") from None
        if math.isnan(value) or math.isinf(value):
            raise DefdropError(f"{what}: {part!r} is not a finite number")
        if low is not None and value < low:
            raise DefdropError(f"{what}: {value:g} is below {low:g}")
        if high is not None and (value > high if high_inclusive else value >= high):
            raise DefdropError(f"{what}: {value:g} must be {'at most' if high_inclusive else 'below'} {high:g}")
        values.append(value)
    if not values:
        raise DefdropError(f"{what}: no values given")
    return list(dict.fromkeys(values))


def parse_ints(text: str, what: str, low: int | None = None) -> list[int]:
    """``"1,8"`` -> ``[1, 8]``, each an integer >= low."""
    out: list[int] = []
    for value in parse_floats(text, what, low=low):
        if value != int(value):
            raise DefdropError(f"{what}: {value:g} is not an integer")
        out.append(int(value))
    return out
