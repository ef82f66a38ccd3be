"""The registry is the one source of truth: plug-ins through it alone, cache keys from resolved parameters."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gameplay.strategies import attacker_space, defender_space
from payoffs.cell import CellSpec
from payoffs.params import Param, ParamSet
from payoffs.registry import ATTACKS, DEFENSES
from payoffs.strategy import AttackerStrategy, DefenderStrategy
from payoffs.table import BuildStats, build_payoff_table, load_model_refs


@pytest.fixture()
def toys():
    ATTACKS.register("toy_nudge", "tests.payoffs.toy_plugins:ToyNudge", ParamSet("toy_nudge", (
        Param("step", float, 0.05, "pixel step", low=0.0, high=1.0, low_open=True),
        Param("rounds", int, 2, "steps", low=1, short="n"))), "a test attack")
    DEFENSES.register("toy_noise", "tests.payoffs.toy_plugins:ToyNoise", (
        Param("width", float, 0.1, "noise width", low=0.0, short="w", in_id="always"),), "a test defense")
    yield
    ATTACKS.unregister("toy_nudge")
    DEFENSES.unregister("toy_noise")


def test_toy_attack_and_defense_through_the_registry_alone(toys, small_checkpoint, tmp_path: Path) -> None:
    refs = load_model_refs([small_checkpoint])
    attackers = attacker_space(["toy_nudge"], {"rounds": [3]})
    defenders = [DefenderStrategy.of("toy_noise", width=0.5)]
    assert [a.id for a in attackers] == ["toy_nudge[n=3]"] and [d.id for d in defenders] == ["toy_noise[w=0.5]"]
    table = build_payoff_table(refs, attackers, defenders, n_images=2, eval_samples=3, cache_dir=tmp_path)
    row = table.iloc[0]
    assert (row["attacker"], row["defender"], row["n_attacks"]) == ("toy_nudge[n=3]", "toy_noise[w=0.5]", 18)
    assert 0.0 <= row["asr"] <= 1.0 and row["attacker_params"] == "step=0.05;rounds=3"
    # The second 1 x 1 cell: a built-in attacker against the toy defense, and the toy attacker's bad values.
    table = build_payoff_table(refs, attacker_space(["fgsm"]), defenders, n_images=2, eval_samples=3,
                               cache_dir=tmp_path)
    assert len(table) == 1 and table.iloc[0]["defense"] == "toy_noise"
    with pytest.raises(ValueError, match="toy_nudge rounds 0 must be an integer >= 1"):
        attacker_space(["toy_nudge"], {"rounds": [0]})


def test_a_changed_default_misses_the_cache(small_checkpoint, tmp_path: Path, monkeypatch) -> None:
    refs = load_model_refs([small_checkpoint])
    kwargs = dict(n_images=1, eval_samples=2, cache_dir=tmp_path)
    attackers = attacker_space(["fgsm"])
    build_payoff_table(refs, attackers, defender_space([0.5]), **kwargs)
    entry = ATTACKS["fgsm"]
    eps = entry.params["eps"]
    changed = dataclasses.replace(entry, params=ParamSet("fgsm", (dataclasses.replace(eps, default=0.2),)))
    monkeypatch.setitem(ATTACKS._entries, "fgsm", changed)
    stats = BuildStats()
    table = build_payoff_table(refs, attacker_space(["fgsm"]), defender_space([0.5]), stats=stats, **kwargs)
    assert stats.computed == 1 and stats.cached == 1  # the attack cell again; the accuracy cell is the same
    assert "eps=0.2" in table.iloc[0]["attacker_params"]


def test_key_holds_every_resolved_parameter_and_the_protocol(small_checkpoint) -> None:
    source = load_model_refs([small_checkpoint])[0]
    from payoffs.sources import DataSource

    spec = CellSpec(source, DataSource("mnist-5k"), AttackerStrategy("cw"), DefenderStrategy("sap"), 2, 3, 0)
    fields = spec.key_fields()
    assert fields["attacker"]["params"]["abort_early"] is True and fields["attacker"]["params"]["learning_rate"] == 0.1
    assert fields["defender"] == {"defense": "sap", "params": {"draws": None, "fraction": 1.0}}
    assert fields["model"] == source.identity and fields["v"] >= 2
    other_slot = dataclasses.replace(spec, slot="fc2")
    assert other_slot.key() != spec.key()
    assert dataclasses.replace(spec, slot="dropout").key() == spec.key()  # the default slot, spelled out
    assert fields["recipe"] == "standard" and fields["slot"] == "dropout"
    assert dataclasses.replace(spec, batch_size=7, device="cuda").key() == spec.key()
