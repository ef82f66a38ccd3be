"""Strategy spaces: cartesian products of attacker and defender strategies, from the CLI or a TOML file.

Every value is checked against the parameter declarations of :mod:`payoffs.registry` while the space is built,
so a bad value fails before any cell runs. TOML layout (each ``[[attacker]]`` block is a product of its lists;
blocks are unioned)::

    [[attacker]]
    attack = "cw"
    kappa = [0, 10]
    eot = [1, 8]
    success_test = ["single", "expected"]

    [[attacker]]
    attack = ["fgsm", "jsma"]

    [defender]            # the short form: dropout rates and SAP
    test_dropout = [0, 0.1, 0.3, 0.5, 0.7]
    sap = true            # adds SAP with one draw per unit
    sap_draws = [50]      # optional: SAP with fixed numbers of draws

    # or, for any registered defense, one [[defender]] block each (a product of its lists):
    # [[defender]]
    # defense = "sap"
    # fraction = [0.5, 1.0]

Values keep their TOML types: ``eot = [1.5]``, ``sap = "no"`` or ``random_start = ["false"]`` are errors, not
silently converted.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import tomllib

from payoffs.errors import DefdropError
from payoffs.registry import ATTACKER_COMMON, ATTACKS, DEFENSES
from payoffs.strategy import AttackerStrategy, DefenderStrategy


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def attacker_space(attacks: Iterable[str], params: Mapping[str, Sequence[Any] | Any | None] | None = None,
                   eot: Sequence[int] = (1,), success_test: Sequence[str] = ("single",), *,
                   text: bool = False) -> list[AttackerStrategy]:
    """Per attack, the product of the parameter lists that attack takes; then EOT sizes x success tests.

    A parameter that none of the chosen attacks takes is an error (``--kappa`` with ``--attack fgsm``). ``text``:
    values are command-line strings, parsed through the declarations.
    """
    attacks = list(attacks)
    if not attacks:
        raise DefdropError("give at least one attack")
    params = {k: _as_list(v) for k, v in (params or {}).items() if v is not None}
    for name in params:
        if not any(name in ATTACKS[a].params for a in attacks):
            takes = "; ".join(f"{a} takes {', '.join(ATTACKS[a].params.names) or 'nothing'}" for a in attacks)
            raise DefdropError(f"parameter {name!r} does not apply to {', '.join(attacks)} ({takes})")
    eots = [ATTACKER_COMMON["eot"].check(k, "attacker", text=text) for k in _as_list(eot)]
    tests = [ATTACKER_COMMON["success_test"].check(t, "attacker", text=text) for t in _as_list(success_test)]
    out: list[AttackerStrategy] = []
    for attack in attacks:
        spec = ATTACKS[attack].params
        names = [n for n in spec.names if n in params]
        grids = [[spec[n].check(v, attack, text=text) for v in params[n]] for n in names]
        for values in itertools.product(*grids):
            for k, test in itertools.product(eots, tests):
                out.append(AttackerStrategy(attack, tuple(zip(names, values)), k, test))
    return list(dict.fromkeys(out))


def defender_space(test_dropout: Sequence[float] = (0.0,), sap: bool = False,
                   sap_draws: Sequence[int] = ()) -> list[DefenderStrategy]:
    """``none`` (r' = 0) and dropout at each r', then SAP (one draw per unit) and SAP at each fixed draw count."""
    out = [DefenderStrategy.dropout(r) for r in test_dropout]
    if sap:
        out.append(DefenderStrategy("sap"))
    out.extend(DefenderStrategy.of("sap", draws=n) for n in sap_draws)
    return list(dict.fromkeys(out))


def defense_space(defense: str, params: Mapping[str, Sequence[Any] | Any] | None = None, *,
                  text: bool = False) -> list[DefenderStrategy]:
    """The product of the parameter lists of one registered defense."""
    spec = DEFENSES[defense].params
    params = {k: _as_list(v) for k, v in (params or {}).items()}
    for name in params:
        if name not in spec:
            raise DefdropError(spec.unknown(name))
    names = list(params)
    grids = [[spec[n].check(v, defense, text=text) for v in params[n]] for n in names]
    return list(dict.fromkeys(DefenderStrategy(defense, tuple(zip(names, values)))
                              for values in itertools.product(*grids)))


# ---------------------------------------------------------------------------------------------- TOML
def _fail(path: Path, message: str) -> DefdropError:
    return DefdropError(f"{path}: {message}")


def _table(path: Path, value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(path, f"{what} must be a table, found {type(value).__name__}")
    return dict(value)


def _typed_list(path: Path, value: Any, what: str, kind: type) -> list:
    values = _as_list(value)
    for v in values:
        ok = isinstance(v, kind) and not (kind in (int, float) and isinstance(v, bool))
        if kind is float:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if not ok:
            raise _fail(path, f"{what} = {v!r} must be {'a number' if kind in (int, float) else kind.__name__}")
    return values


def _attackers_from(path: Path, blocks: Any) -> list[AttackerStrategy]:
    if isinstance(blocks, dict):
        blocks = [blocks]
    if blocks is not None and not isinstance(blocks, list):
        raise _fail(path, f"attacker must be [[attacker]] blocks, found {type(blocks).__name__}")
    if not blocks:
        raise _fail(path, "needs at least one [[attacker]] block")
    out: list[AttackerStrategy] = []
    for i, raw in enumerate(blocks, start=1):
        block = _table(path, raw, f"[[attacker]] block {i}")
        if "attack" not in block:
            raise _fail(path, f"[[attacker]] block {i} has no 'attack'")
        attacks = _typed_list(path, block.pop("attack"), "attack", str)
        eot = block.pop("eot", 1)
        tests = _typed_list(path, block.pop("success_test", "single"), "success_test", str)
        try:
            out.extend(attacker_space(attacks, block, _as_list(eot), tests))
        except DefdropError as exc:
            raise _fail(path, f"[[attacker]] block {i}: {exc}") from None
    return out


def _defenders_from(path: Path, section: Any) -> list[DefenderStrategy]:
    if section is None:
        return [DefenderStrategy("none")]
    if isinstance(section, dict):  # the short form
        unknown = set(section) - {"test_dropout", "sap", "sap_draws"}
        if unknown:
            raise _fail(path, f"unknown [defender] key {sorted(unknown)[0]!r} (test_dropout, sap, sap_draws; "
                              "use [[defender]] blocks for other defenses)")
        sap = section.get("sap", False)
        if not isinstance(sap, bool):
            raise _fail(path, f"[defender] sap = {sap!r} must be true or false")
        rates = _typed_list(path, section.get("test_dropout", [0.0]), "test_dropout", float)
        draws = _typed_list(path, section.get("sap_draws", []), "sap_draws", int)
        try:
            return defender_space(rates, sap, draws)
        except DefdropError as exc:
            raise _fail(path, f"[defender]: {exc}") from None
    if not isinstance(section, list):
        raise _fail(path, f"defender must be a table or [[defender]] blocks, found {type(section).__name__}")
    out: list[DefenderStrategy] = []
    for i, raw in enumerate(section, start=1):
        block = _table(path, raw, f"[[defender]] block {i}")
        if "defense" not in block:
            raise _fail(path, f"[[defender]] block {i} has no 'defense'")
        for defense in _typed_list(path, block.pop("defense"), "defense", str):
            try:
                out.extend(defense_space(defense, block))
            except DefdropError as exc:
                raise _fail(path, f"[[defender]] block {i}: {exc}") from None
    return out


def spaces_from_toml(path: str | Path) -> tuple[list[AttackerStrategy], list[DefenderStrategy]]:
    """Read attacker and defender spaces from a TOML file (layout in the module docstring)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise DefdropError(f"{path}: strategy file not found") from None
    except IsADirectoryError:
        raise DefdropError(f"{path}: is a directory, not a strategy file") from None
    except UnicodeDecodeError:
        raise DefdropError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DefdropError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DefdropError(f"{path}: invalid TOML ({exc})") from None
    unknown = set(doc) - {"attacker", "defender"}
    if unknown:
        raise _fail(path, f"unknown section {sorted(unknown)[0]!r} (attacker, defender)")
    attackers = _attackers_from(path, doc.get("attacker"))
    defenders = _defenders_from(path, doc.get("defender"))
    return list(dict.fromkeys(attackers)), list(dict.fromkeys(defenders))
