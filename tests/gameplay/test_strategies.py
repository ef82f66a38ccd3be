"""Strategy spaces: products, stable ids, TOML, refusal of bad values up front."""
from __future__ import annotations

from pathlib import Path

import pytest

from gameplay.strategies import attacker_space, defender_space, spaces_from_toml
from payoffs.errors import DefdropError
from payoffs.strategy import AttackerStrategy, DefenderStrategy


def test_cli_product_and_ids() -> None:
    attackers = attacker_space(["cw", "fgsm"], {"kappa": [0, 10], "eps": [0.25]}, eot=[1, 8])
    assert [a.id for a in attackers] == ["cw[k=0]", "cw[k=0,eot=8]", "cw[k=10]", "cw[k=10,eot=8]",
                                         "fgsm[eps=0.25]", "fgsm[eps=0.25,eot=8]"]
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
    assert DefenderStrategy("dropout", 0.0) == DefenderStrategy("none")


@pytest.mark.parametrize("call,message", [
    (lambda: attacker_space(["cw"], {"kappa": [-1]}), "kappa=-1 is below 0"),
    (lambda: attacker_space(["deepfool"]), "unknown attack 'deepfool'"),
    (lambda: attacker_space(["cw"], eot=[0]), "eot 0 must be a positive integer"),
    (lambda: attacker_space(["cw"], success_test=["maybe"]), "success test 'maybe'"),
    (lambda: attacker_space(["cw"], {"iterations": [10.5]}), "iterations=10.5 is not an integer"),
    (lambda: attacker_space(["fgsm"], {"eps": [2]}), "eps=2 is above 1"),
    (lambda: defender_space([1.0]), "test dropout rate 1 must be in [0, 1)"),
    (lambda: defender_space([0.5], sap_draws=[0]), "SAP draws 0 must be at least 1"),
    (lambda: AttackerStrategy("fgsm", (("kappa", 1.0),)), "attack fgsm has no parameter 'kappa'"),
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
    with pytest.raises(DefdropError, match="unknown attacker parameter 'foo'"):
        spaces_from_toml(path)
    path.write_text("[[attacker\n")
    with pytest.raises(DefdropError, match="invalid TOML"):
        spaces_from_toml(path)
    with pytest.raises(DefdropError, match="strategy file not found"):
        spaces_from_toml(tmp_path / "missing.toml")
