"""Strategy spaces: cartesian products of attacker and defender strategies, from the CLI or a TOML file.

TOML layout (each ``[[attacker]]`` block is a product of its lists; blocks are unioned)::

    [[attacker]]
    attack = "cw"
    kappa = [0, 10]
    eot = [1, 8]
    success_test = ["single", "expected"]

    [[attacker]]
    attack = ["fgsm", "jsma"]

    [defender]
    test_dropout = [0, 0.1, 0.3, 0.5, 0.7]
    sap = true            # adds SAP with one draw per unit
    sap_draws = [50]      # optional: SAP with fixed numbers of draws
"""
from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from payoffs.errors import DefdropError
from payoffs.strategy import (ATTACK_PARAMS, ATTACKS, SUCCESS_TESTS, AttackerStrategy, DefenderStrategy)

_INT_PARAMS = {"search_steps", "iterations", "steps"}
_BOOL_PARAMS = {"random_start"}
# Bounds checked up front, so a bad value fails before any cell runs: (low, high, high inclusive).
_BOUNDS = {"kappa": (0.0, None), "initial_c": (0.0, None), "search_steps": (1, None), "iterations": (1, None),
           "learning_rate": (0.0, None), "eps": (0.0, 1.0), "step_size": (0.0, 1.0), "steps": (1, None),
           "theta": (-1.0, 1.0), "gamma": (0.0, 1.0)}


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_param(name: str, value: Any) -> Any:
    if name in _BOOL_PARAMS:
        return bool(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DefdropError(f"{name}={value!r} is not a number") from None
    low, high = _BOUNDS.get(name, (None, None))
    if low is not None and number < low:
        raise DefdropError(f"{name}={value} is below {low:g}")
    if high is not None and number > high:
        raise DefdropError(f"{name}={value} is above {high:g}")
    if name in ("initial_c", "learning_rate", "eps", "step_size", "gamma") and number <= 0:
        raise DefdropError(f"{name}={value} must be positive")
    if name in _INT_PARAMS:
        if number != int(number):
            raise DefdropError(f"{name}={value} is not an integer")
        return int(number)
    return number


def attacker_space(attacks: Iterable[str], params: Mapping[str, Sequence[Any] | None] | None = None,
                   eot: Sequence[int] = (1,), success_test: Sequence[str] = ("single",)) -> list[AttackerStrategy]:
    """The product, per attack, of the parameter lists that attack takes (others are ignored for it).

    C&W always carries kappa (0 unless given) so its id says the confidence it was run at.
    """
    params = {k: v for k, v in (params or {}).items() if v is not None}
    for test in success_test:
        if test not in SUCCESS_TESTS:
            raise DefdropError(f"success test {test!r} must be single or expected")
    for k in eot:
        if int(k) != k or k < 1:
            raise DefdropError(f"eot {k} must be a positive integer")
    out: list[AttackerStrategy] = []
    for attack in attacks:
        if attack not in ATTACKS:
            raise DefdropError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
        names = [n for n in ATTACK_PARAMS[attack] if n in params]
        if attack == "cw" and "kappa" not in params:
            params_for = {**params, "kappa": [0.0]}
            names = ["kappa", *names]
        else:
            params_for = params
        grids = [[_check_param(n, v) for v in _as_list(params_for[n])] for n in names]
        for values in itertools.product(*grids):
            for k, test in itertools.product(eot, success_test):
                out.append(AttackerStrategy(attack, tuple(zip(names, values)), int(k), test))
    return list(dict.fromkeys(out))


def defender_space(test_dropout: Sequence[float] = (0.0,), sap: bool = False,
                   sap_draws: Sequence[int] = ()) -> list[DefenderStrategy]:
    """``none`` (r' = 0) and dropout at each r', then SAP (one draw per unit) and SAP at each fixed draw count."""
    out = [DefenderStrategy("dropout", float(r)) for r in test_dropout]
    if sap:
        out.append(DefenderStrategy("sap"))
    out.extend(DefenderStrategy("sap", sap_draws=int(n)) for n in sap_draws)
    return list(dict.fromkeys(out))


def spaces_from_toml(path: str | Path) -> tuple[list[AttackerStrategy], list[DefenderStrategy]]:
    """Read attacker and defender spaces from a TOML file (layout in the module docstring)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise DefdropError(f"{path}: strategy file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise DefdropError(f"{path}: invalid TOML ({exc})") from None
    attackers: list[AttackerStrategy] = []
    blocks = doc.get("attacker", [])
    if isinstance(blocks, dict):
        blocks = [blocks]
    for block in blocks:
        block = dict(block)
        attacks = _as_list(block.pop("attack", None))
        if attacks == [None]:
            raise DefdropError(f"{path}: an [[attacker]] block has no 'attack'")
        eot = [int(k) for k in _as_list(block.pop("eot", 1))]
        tests = _as_list(block.pop("success_test", "single"))
        known = set().union(*ATTACK_PARAMS.values())
        unknown = set(block) - known
        if unknown:
            raise DefdropError(f"{path}: unknown attacker parameter {sorted(unknown)[0]!r}")
        attackers.extend(attacker_space(attacks, block, eot, tests))
    defender = doc.get("defender", {})
    unknown = set(defender) - {"test_dropout", "sap", "sap_draws"}
    if unknown:
        raise DefdropError(f"{path}: unknown defender key {sorted(unknown)[0]!r}")
    defenders = defender_space([float(r) for r in _as_list(defender.get("test_dropout", [0.0]))],
                               bool(defender.get("sap", False)),
                               [int(n) for n in _as_list(defender.get("sap_draws", []))])
    if not attackers:
        raise DefdropError(f"{path}: no [[attacker]] blocks")
    return list(dict.fromkeys(attackers)), defenders
