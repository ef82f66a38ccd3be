"""Parameters declared once: name, type, bounds, default, help; every reader (constructors, strategy ids, the CLI,
up-front checks of a strategy space, cache keys) goes through the declaration. Torch-free.

Modelled on scikit-learn's ``_parameter_constraints``: a :class:`Param` checks and coerces one value with one
error shape ("<owner> <name> <value> must be ..."); a :class:`ParamSet` resolves a mapping of given values into
the full, validated set (defaults filled in), which is what a cache key hashes.

>>> spec = ParamSet("fgsm", (Param("eps", float, 0.25, low=0.0, high=1.0, low_open=True, short="eps"),))
>>> spec.resolve({"eps": "0.3"}, text=True)
{'eps': 0.3}
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from payoffs.errors import DefdropError

KINDS = (int, float, bool, str)
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """``"; did you mean a, b?"`` for the closest valid names, or ``""`` when none is close."""
    near = difflib.get_close_matches(str(name), list(choices), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(near)}?" if near else ""


def format_value(value: object) -> str:
    """How a value is written in ids and messages: ``0.5``, ``10``, ``1`` / ``0`` for booleans, ``none``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``kind``: int, float, bool or str. Numbers are checked against ``[low, high]`` (``low_open``/``high_open``
    make a bound strict); ``nonzero`` refuses 0; ``choices`` lists the allowed strings; ``optional`` allows
    ``None`` (written ``none``). ``short`` is the name used in strategy ids; ``in_id`` says when the value is
    shown there: ``always``, ``changed`` (when it differs from the default) or ``never``.
    """

    name: str
    kind: type
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nonzero: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False
    short: str = ""
    in_id: str = "changed"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TypeError(f"parameter {self.name}: kind must be one of int, float, bool, str")
        if self.in_id not in ("always", "changed", "never"):
            raise TypeError(f"parameter {self.name}: in_id must be always, changed or never")
        if not self.short:
            object.__setattr__(self, "short", self.name)
        if self.default is not None or not self.optional:
            object.__setattr__(self, "default", self.check(self.default, "default"))

    # ------------------------------------------------------------------ description
    def allowed(self) -> str:
        """The allowed values in words: ``a number in (0, 1]``, ``one of probs, logits``, ``true or false``."""
        if self.choices:
            text = f"one of {', '.join(self.choices)}"
        elif self.kind is bool:
            text = "true or false"
        elif self.kind in (int, float):
            what = "an integer" if self.kind is int else "a number"
            if self.low is None and self.high is None:
                text = what
            elif self.high is None:
                text = f"{what} {'>' if self.low_open else '>='} {format_value(self.low)}"
            elif self.low is None:
                text = f"{what} {'<' if self.high_open else '<='} {format_value(self.high)}"
            else:
                text = (f"{what} in {'(' if self.low_open else '['}{format_value(self.low)}, "
                        f"{format_value(self.high)}{')' if self.high_open else ']'}")
            if self.nonzero:
                text += ", not 0"
        else:
            text = "text"
        return text + (" or none" if self.optional else "")

    def describe(self) -> str:
        """One line for ``--help`` and docs: ``eps (number in (0, 1], default 0.25): Linf budget``."""
        return f"{self.name} ({self.allowed()}, default {format_value(self.default)}): {self.help}".rstrip(": ")

    # ------------------------------------------------------------------ checking
    def check(self, value: Any, owner: str = "", *, text: bool = False) -> Any:
        """``value`` coerced to this parameter's type and checked.

        ``text=True``: ``value`` comes from a command line and strings are parsed (``"0.3"``, ``"true"``,
        ``"none"``); otherwise (Python, TOML) a string for a number or a boolean is refused. Refuses what would be
        silently reinterpreted: ``1.5`` for an integer, ``2`` for a boolean, a boolean for a number, NaN and
        infinities.
        """
        who = f"{owner} {self.name}".strip()
        if isinstance(value, str) and self.kind is not str and not text:
            raise DefdropError(f"{who} {value!r} must be {self.allowed()}, not text")
        if value is None or (isinstance(value, str) and value.strip().lower() == "none" and self.optional):
            if self.optional:
                return None
            raise DefdropError(f"{who} needs a value ({self.allowed()})")
        if self.kind is bool:
            return self._check_bool(value, who)
        if self.kind is str:
            if not isinstance(value, str):
                raise DefdropError(f"{who} {value!r} must be {self.allowed()}")
            value = value.strip()
            if self.choices and value not in self.choices:
                raise DefdropError(f"{who} {value!r} must be {self.allowed()}{closest(value, self.choices)}")
            return value
        return self._check_number(value, who)

    def _check_bool(self, value: Any, who: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise DefdropError(f"{who} {value!r} must be true or false")

    def _check_number(self, value: Any, who: str) -> int | float:
        if isinstance(value, bool):
            raise DefdropError(f"{who} {value!r} must be {self.allowed()}, not a boolean")
        if isinstance(value, str):
            text = value.strip()
            try:
                value = int(text) if self.kind is int and text.lstrip("+-").isdigit() else float(text)
            except ValueError:
                raise DefdropError(f"{who} {text!r} is not {self.allowed()}") from None
        if not isinstance(value, (int, float)) or isinstance(value, complex):
            raise DefdropError(f"{who} {value!r} must be {self.allowed()}")
        if not math.isfinite(value):
            raise DefdropError(f"{who} {value!r} must be a finite number")
        if self.kind is int:
            if int(value) != value:
                raise DefdropError(f"{who} {format_value(value)} must be an integer")
            value = int(value)
        else:
            value = float(value)
        bad = ((self.low is not None and (value <= self.low if self.low_open else value < self.low))
               or (self.high is not None and (value >= self.high if self.high_open else value > self.high))
               or (self.nonzero and value == 0))
        if bad:
            raise DefdropError(f"{who} {format_value(value)} must be {self.allowed()}")
        return value


@dataclass(frozen=True)
class ParamSet:
    """The declared parameters of one attack, defense or recipe (``owner`` names it in messages)."""

    owner: str
    params: tuple[Param, ...] = ()
    notes: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise TypeError(f"{self.owner}: parameter names must be unique, got {names}")
        shorts = [p.short for p in self.params]
        if len(set(shorts)) != len(shorts):
            raise TypeError(f"{self.owner}: short names must be unique, got {shorts}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise DefdropError(self.unknown(name))

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.params)

    def unknown(self, name: str) -> str:
        takes = ", ".join(self.names) or "no parameters"
        return f"{self.owner} has no parameter {name!r} (it takes {takes}){closest(name, self.names)}"

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, given: Mapping[str, Any] | None = None, *, text: bool = False) -> dict[str, Any]:
        """Every declared parameter, from ``given`` where present (checked and coerced), else its default.

        Unknown names are an error naming the closest valid ones. The result is in declaration order. ``text``:
        values are command-line strings (see :meth:`Param.check`).
        """
        given = dict(given or {})
        for name in given:
            if name not in self:
                raise DefdropError(self.unknown(name))
        return {p.name: (p.check(given[p.name], self.owner, text=text) if p.name in given else p.default)
                for p in self.params}

    def id_parts(self, resolved: Mapping[str, Any]) -> list[str]:
        """``short=value`` for the parameters a strategy id shows (see :attr:`Param.in_id`), in declared order."""
        parts = []
        for p in self.params:
            value = resolved.get(p.name, p.default)
            if p.in_id == "always" or (p.in_id == "changed" and value != p.default):
                parts.append(f"{p.short}={format_value(value)}")
        return parts

    def describe(self) -> str:
        """One line per parameter (for help texts and docs)."""
        return "\n".join(p.describe() for p in self.params)
