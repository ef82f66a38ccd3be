"""Strategy spaces: products, stable ids, TOML, refusal of bad values up front."""
from __future__ import annotations

from pathlib import Path

import pytest

from gameplay.strategies import attacker_space, defender_space, spaces_from_toml
from payoffs.errors import DefdropError
from payoffs.strategy import AttackerStrategy, DefenderStrategy


def test_cli_product_and_ids() -> None:
    attackers = attacker_space(["cw", "fgsm"], {"kappa": [0, 10], "eps": [0.25]}, eot=[1, 8])
    # Ids show what differs from the declared defaults (C&W always shows kappa); eps 0.25 is FGSM's default.
    assert [a.id for a in attackers] == ["cw[k=0]", "cw[k=0,eot=8]", "cw[k=10]", "cw[k=10,eot=8]",
                                         "fgsm", "fgsm[eot=8]"]
    assert attackers[-1].param("eps") == 0.25 and attackers[0].param("iterations") == 100
    expected = attacker_space(["cw"], {"kappa": [0]}, eot=[8], success_test=["expected"])
    assert [a.id for a in expected] == ["cw[k=0,eot=8,exp]"]
    defenders = defender_space([0, 0.1, 0.3], sap=True, sap_draws=[50])
    assert [d.id for d in defenders] == ["none", "dropout[r'=0.1]", "dropout[r'=0.3]", "sap[frac=1]", "sap[n=50]"]
    assert defenders[0].test_dropout == 0.0 and defenders[2].test_dropout == 0.3


def test_ids_are_stable_and_order_independent() -> None:
    a = AttackerStrategy("cw", (("initial_c", 0.1), ("kappa", 5.0)))
    b = AttackerStrategy("cw", (("kappa", 5.0), ("initial_c", 0.1)))
    assert a == b and a.id == b.id == "cw[k=5,c=0.1]"
    assert hash(a) == hash(b)
    assert DefenderStrategy.dropout(0.0) == DefenderStrategy("none")
    # Defaults spelled out or left out: the same strategy, the same id, the same cache dictionary.
    explicit = AttackerStrategy("cw", {"kappa": 0.0, "iterations": 100, "learning_rate": 0.1})
    assert explicit == AttackerStrategy("cw") and explicit.to_dict() == AttackerStrategy("cw").to_dict()
    assert "abort_early" in explicit.to_dict()["params"]


@pytest.mark.parametrize("call,message", [
    (lambda: attacker_space(["cw"], {"kappa": [-1]}), "cw kappa -1 must be a number >= 0"),
    (lambda: attacker_space(["deepfool"]), "unknown attack 'deepfool'"),
    (lambda: attacker_space(["cw"], eot=[0]), "attacker eot 0 must be an integer >= 1"),
    (lambda: attacker_space(["cw"], success_test=["maybe"]), "success_test 'maybe' must be one of single, expected"),
    (lambda: attacker_space(["cw"], {"iterations": [10.5]}), "cw iterations 10.5 must be an integer"),
    (lambda: attacker_space(["fgsm"], {"eps": [2]}), "fgsm eps 2 must be a number in (0, 1]"),
    (lambda: attacker_space(["jsma"], {"theta": [0.0]}), "jsma theta 0 must be a number in [-1, 1], not 0"),
    (lambda: attacker_space(["fgsm"], {"kappa": [5]}), "parameter 'kappa' does not apply to fgsm"),
    (lambda: defender_space([1.0]), "dropout rate 1 must be a number in [0, 1)"),
    (lambda: defender_space([0.5], sap_draws=[0]), "sap draws 0 must be an integer >= 1"),
    (lambda: AttackerStrategy("fgsm", (("kappa", 1.0),)), "fgsm has no parameter 'kappa' (it takes eps)"),
])
def test_bad_values_refused_with_one_line(call, message: str) -> None:
    with pytest.raises(DefdropError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_toml_spaces(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("""
[[attacker]]
attack = "cw"
kappa = [0, 10]
eot = [1, 8]
success_test = ["single", "expected"]

[[attacker]]
attack = ["fgsm", "jsma"]

[defender]
test_dropout = [0, 0.5]
sap = true
""")
    attackers, defenders = spaces_from_toml(path)
    assert len(attackers) == 2 * 2 * 2 + 2
    assert "cw[k=10,eot=8,exp]" in [a.id for a in attackers]
    assert [d.id for d in defenders] == ["none", "dropout[r'=0.5]", "sap[frac=1]"]
    path.write_text("[[attacker]]\nattack = 'cw'\nkappa = [0]\nfoo = 1\n")
    with pytest.raises(DefdropError, match="parameter 'foo' does not apply to cw"):
        spaces_from_toml(path)
    path.write_text("[[attacker\n")
    with pytest.raises(DefdropError, match="invalid TOML"):
        spaces_from_toml(path)
    with pytest.raises(DefdropError, match="strategy file not found"):
        spaces_from_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("text,message", [
    ("[[attacker]]\nattack = 'cw'\neot = ['x']\n", "eot 'x' must be an integer >= 1, not text"),
    ("[[attacker]]\nattack = 'cw'\neot = [1.5]\n", "eot 1.5 must be an integer"),
    ("attacker = 5\n", "attacker must be [[attacker]] blocks, found int"),
    ("[[attacker]]\nattack = 'fgsm'\n[x]\n", "unknown section 'x'"),
    ("defender = 3\n[[attacker]]\nattack = 'fgsm'\n", "defender must be a table"),
    ("[[attacker]]\nattack = 'fgsm'\n[defender]\nsap = 'no'\n", "sap = 'no' must be true or false"),
    ("[[attacker]]\nattack = 'pgd'\nrandom_start = ['false']\n", "random_start 'false' must be true or false"),
    ("[[attacker]]\nattack = 5\n", "attack = 5 must be str"),
    ("[[attacker]]\nattack = 'fgsm'\n[defender]\ntest_dropout = ['0.5']\n", "test_dropout = '0.5' must be a number"),
])
def test_toml_values_keep_their_types(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(DefdropError) as info:
        spaces_from_toml(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_toml_not_utf8_or_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_bytes(b"[[attacker]]\nattack = '\xff'\n")
    with pytest.raises(DefdropError, match="not UTF-8"):
        spaces_from_toml(path)
    with pytest.raises(DefdropError, match="is a directory"):
        spaces_from_toml(tmp_path)


def test_generic_defender_blocks(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[[attacker]]\nattack = 'fgsm'\n[[defender]]\ndefense = 'dropout'\nrate = [0, 0.5]\n"
                    "[[defender]]\ndefense = 'sap'\nfraction = [0.5]\n")
    _, defenders = spaces_from_toml(path)
    assert [d.id for d in defenders] == ["none", "dropout[r'=0.5]", "sap[frac=0.5]"]
