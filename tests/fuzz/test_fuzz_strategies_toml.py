"""Fuzz the strategy-file reader (gameplay.strategies.spaces_from_toml, through its public function only):
mutated bytes of valid files, and documents whose values have every TOML type in every place."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gameplay.strategies import spaces_from_toml
from tests.fuzz.mutate import CORPUS, FUZZ, fuzz_bytes, only_defdrop_errors

SEEDS = [p.read_bytes() for p in sorted(CORPUS.glob("*.toml"))]
KEYS_ATTACKER = ["attack", "kappa", "eot", "success_test", "eps", "steps", "theta", "gamma", "initial_c",
                 "search_steps", "iterations", "learning_rate", "random_start", "other"]
KEYS_DEFENDER = ["test_dropout", "sap", "sap_draws", "other"]
NAMES = ["cw", "fgsm", "jsma", "pgd", "single", "expected", "x", "", "cw[k=0]", "[/x]"]

scalars = (st.booleans() | st.integers(-10 ** 20, 10 ** 20) | st.floats() | st.sampled_from(NAMES) |
           st.text(max_size=5) | st.just(dt.date(2024, 1, 1)))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["a", "eot"]), c,
                                                                                     max_size=2), max_leaves=5)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(v), repr(v))
    if isinstance(v, (int, dt.date)):
        return str(v)
    if isinstance(v, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in v) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"


@st.composite
def documents(draw) -> bytes:
    lines: list[str] = []
    if draw(st.integers(0, 5)) == 0:  # the top-level keys themselves of the wrong type
        lines += [f"attacker = {_toml_value(draw(values))}", f"defender = {_toml_value(draw(values))}"]
    else:
        for _ in range(draw(st.integers(0, 2))):
            lines.append("[[attacker]]")
            for key in draw(st.lists(st.sampled_from(KEYS_ATTACKER), max_size=4, unique=True)):
                lines.append(f"{key} = {_toml_value(draw(values))}")
        if draw(st.booleans()):
            lines.append("[defender]")
            for key in draw(st.lists(st.sampled_from(KEYS_DEFENDER), max_size=3, unique=True)):
                lines.append(f"{key} = {_toml_value(draw(values))}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_seeds_are_valid() -> None:
    for path in CORPUS.glob("*.toml"):
        attackers, defenders = spaces_from_toml(path)
        assert attackers and defenders


def test_not_utf8_and_a_directory(workdir: Path) -> None:
    (workdir / "latin1.toml").write_bytes('[defender]\ntest_dropout = [0]\n# caf\xe9\n'.encode("latin-1"))
    only_defdrop_errors(spaces_from_toml, workdir / "latin1.toml")
    only_defdrop_errors(spaces_from_toml, workdir)


@FUZZ
@given(data=st.one_of(fuzz_bytes(SEEDS, hot=64), documents()))
def test_fuzz_strategies_toml(workdir: Path, data: bytes) -> None:
    path = workdir / "sweep.toml"
    path.write_bytes(data)
    only_defdrop_errors(spaces_from_toml, path)
