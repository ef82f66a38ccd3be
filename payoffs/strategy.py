"""The two players' pure strategies as plain, hashable, serializable specs with short stable ids.

An attacker strategy is an attack, its parameters, EOT samples per gradient and its success test; a defender
strategy is a defense and its parameter (the checkpoint, hence the training rate r, is the cell's model).
The strategy *spaces* (cartesian products, TOML files) live in ``gameplay.strategies``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from payoffs.errors import DefdropError

ATTACKS = ("fgsm", "jsma", "cw", "pgd")
DEFENSES = ("none", "dropout", "sap")
SUCCESS_TESTS = ("single", "expected")

# Parameters each attack accepts, with the short names used in ids (in id order).
ATTACK_PARAMS: dict[str, dict[str, str]] = {
    "fgsm": {"eps": "eps"},
    "pgd": {"eps": "eps", "step_size": "a", "steps": "n", "random_start": "rs"},
    "jsma": {"theta": "th", "gamma": "g"},
    "cw": {"kappa": "k", "initial_c": "c", "search_steps": "s", "iterations": "it", "learning_rate": "lr"},
}


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class AttackerStrategy:
    """attack + parameters (sorted (name, value) pairs) + ``eot`` samples per step + success test."""

    attack: str
    params: tuple[tuple[str, float | int | bool], ...] = ()
    eot: int = 1
    success_test: str = "single"

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise DefdropError(f"unknown attack {self.attack!r}; choose one of {', '.join(ATTACKS)}")
        allowed = ATTACK_PARAMS[self.attack]
        for name, value in self.params:
            if name not in allowed:
                raise DefdropError(f"attack {self.attack} has no parameter {name!r} "
                                   f"(it takes {', '.join(allowed) or 'none'})")
            if isinstance(value, float) and not math.isfinite(value):
                raise DefdropError(f"{self.attack} {name}={value} is not a finite number")
        if int(self.eot) != self.eot or self.eot < 1:
            raise DefdropError(f"eot {self.eot} must be a positive integer")
        if self.success_test not in SUCCESS_TESTS:
            raise DefdropError(f"success test {self.success_test!r} must be single or expected")
        object.__setattr__(self, "params", tuple(sorted(self.params, key=lambda kv: list(allowed).index(kv[0]))))

    @property
    def id(self) -> str:
        """E.g. ``cw[k=0,eot=8,exp]``: parameters in a fixed order; defaults of eot/test omitted."""
        short = ATTACK_PARAMS[self.attack]
        parts = [f"{short[k]}={_fmt(v)}" for k, v in self.params]
        if self.eot != 1:
            parts.append(f"eot={self.eot}")
        if self.success_test != "single":
            parts.append("exp")
        return f"{self.attack}[{','.join(parts)}]" if parts else self.attack

    def param(self, name: str, default: float | None = None) -> float | None:
        return dict(self.params).get(name, default)

    def to_dict(self) -> dict:
        return {"attack": self.attack, "params": dict(self.params), "eot": self.eot,
                "success_test": self.success_test}


@dataclass(frozen=True)
class DefenderStrategy:
    """``none``, ``dropout`` at test rate r', or ``sap`` with ``draws`` (or a ``fraction`` of the units)."""

    defense: str
    rate: float = 0.0
    sap_draws: int | None = None
    sap_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.defense not in DEFENSES:
            raise DefdropError(f"unknown defense {self.defense!r}; choose one of {', '.join(DEFENSES)}")
        if self.defense == "dropout" and not 0.0 <= self.rate < 1.0:
            raise DefdropError(f"test dropout rate {self.rate:g} must be in [0, 1)")
        if self.defense == "sap":
            if self.sap_draws is not None and self.sap_draws < 1:
                raise DefdropError(f"SAP draws {self.sap_draws} must be at least 1")
            if not self.sap_fraction > 0:
                raise DefdropError(f"SAP fraction {self.sap_fraction:g} must be positive")
        if self.defense == "dropout" and self.rate == 0.0:
            object.__setattr__(self, "defense", "none")  # r' = 0 *is* the undefended model

    @property
    def id(self) -> str:
        if self.defense == "none":
            return "none"
        if self.defense == "dropout":
            return f"dropout[r'={self.rate:g}]"
        return f"sap[n={self.sap_draws}]" if self.sap_draws is not None else f"sap[frac={self.sap_fraction:g}]"

    @property
    def test_dropout(self) -> float:
        """r' for the table: the rate for dropout, 0 for none, NaN for SAP."""
        return {"none": 0.0, "dropout": self.rate}.get(self.defense, float("nan"))

    def module(self):
        """A fresh defense ``nn.Module`` for the model's defense slot."""
        from payoffs.defenses import make_defense
        return make_defense(self.defense, self.rate, self.sap_draws, self.sap_fraction)

    def to_dict(self) -> dict:
        return asdict(self)
