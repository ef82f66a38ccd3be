"""The two players' pure strategies as plain, hashable, serializable specs with short stable ids.

An attacker strategy is an attack with its parameters, EOT samples per gradient and its success test; a defender
strategy is a test-time defense with its parameters (the model, hence the training recipe and rate r, is the
cell's). Both resolve their parameters through the declarations in :mod:`payoffs.registry` when they are built, so
a bad value fails before any cell runs, two spellings of the same strategy are equal, and :meth:`to_dict` (what a
cache key hashes) holds every parameter, defaults included. Torch-free. The strategy *spaces* (products, TOML
files) live in ``gameplay.strategies``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from payoffs.params import format_value
from payoffs.registry import ATTACKER_COMMON, ATTACKS, DEFENSES

Params = tuple[tuple[str, Any], ...]


def _as_params(params: Mapping[str, Any] | Params | None) -> dict[str, Any]:
    return dict(params.items() if isinstance(params, Mapping) else (params or ()))


@dataclass(frozen=True)
class AttackerStrategy:
    """attack + its parameters (resolved, defaults included, in declared order) + ``eot`` + success test.

    ``params`` may be given as a mapping or (name, value) pairs, partially: the rest take their declared defaults.
    """

    attack: str
    params: Params = ()
    eot: int = 1
    success_test: str = "single"

    def __post_init__(self) -> None:
        resolved = ATTACKS[self.attack].resolve(_as_params(self.params))
        common = ATTACKER_COMMON.resolve({"eot": self.eot, "success_test": self.success_test})
        object.__setattr__(self, "params", tuple(resolved.items()))
        object.__setattr__(self, "eot", common["eot"])
        object.__setattr__(self, "success_test", common["success_test"])

    @property
    def id(self) -> str:
        """E.g. ``cw[k=0,eot=8,exp]``: parameters that differ from their defaults (and kappa), EOT, the test."""
        extra = ([f"eot={self.eot}"] if self.eot != 1 else []) + (["exp"] if self.success_test == "expected" else [])
        return ATTACKS[self.attack].strategy_id(dict(self.params), extra)

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    def attack_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the attack's class: its parameters, ``eot`` and ``success_test``."""
        return {**dict(self.params), "eot": self.eot, "success_test": self.success_test}

    def to_dict(self) -> dict:
        return {"attack": self.attack, "params": dict(self.params), "eot": self.eot,
                "success_test": self.success_test}


@dataclass(frozen=True)
class DefenderStrategy:
    """A registered test-time defense with its parameters (resolved); ``dropout`` at r' = 0 is ``none``.

    >>> DefenderStrategy.dropout(0.5).id
    "dropout[r'=0.5]"
    """

    defense: str
    params: Params = ()

    def __post_init__(self) -> None:
        resolved = DEFENSES[self.defense].resolve(_as_params(self.params))
        entry = DEFENSES[self.defense]
        if entry.rate is not None and resolved[entry.rate] == 0.0 and "none" in DEFENSES:
            object.__setattr__(self, "defense", "none")  # rate 0 *is* the undefended model
            resolved = {}
        object.__setattr__(self, "params", tuple(resolved.items()))

    @classmethod
    def of(cls, defense: str, **params: Any) -> "DefenderStrategy":
        return cls(defense, tuple(params.items()))

    @classmethod
    def dropout(cls, rate: float) -> "DefenderStrategy":
        return cls.of("dropout", rate=rate)

    @property
    def id(self) -> str:
        return DEFENSES[self.defense].strategy_id(dict(self.params))

    @property
    def rate(self) -> float | None:
        """The defense's test-time rate r' if it has one (0 for ``none``), else ``None``."""
        if self.defense == "none":
            return 0.0
        entry = DEFENSES[self.defense]
        return None if entry.rate is None else float(dict(self.params)[entry.rate])

    @property
    def test_dropout(self) -> float:
        """r' for the table: the rate where the defense has one, 0 for none, NaN otherwise (e.g. SAP)."""
        rate = self.rate
        return math.nan if rate is None else rate

    @property
    def deterministic(self) -> bool:
        return self.defense == "none"

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    def params_text(self) -> str:
        """``name=value;...`` of the resolved parameters (the table's ``defense_params`` column)."""
        return ";".join(f"{k}={format_value(v)}" for k, v in self.params)

    def module(self):
        """A fresh defense ``nn.Module`` for the model's defense slot."""
        return DEFENSES[self.defense].load()(**dict(self.params))

    def to_dict(self) -> dict:
        return {"defense": self.defense, "params": dict(self.params)}
