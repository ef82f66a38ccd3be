"""``defdrop audit`` measured on models with known answers: every check passes on an undefended model with a sound
attack, and fails on a known flaw (masked gradients, a crippled attack, a defense random only in training mode, an
attack that switches modes); the EOT curve of a dropout defender rises and flattens; any model through its source."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gameplay.audit_rules import EOT_MARGIN, FAIL, PASS, decide, eot_step_saturated
from payoffs.audit.runner import audit_model, audit_source
from payoffs.audit.settings import AuditSettings
from payoffs.data import Dataset
from payoffs.params import Param
from payoffs.registry import ATTACKS, DEFENSES
from payoffs.sources import TestSplit
from payoffs.strategy import AttackerStrategy, DefenderStrategy
from payoffs.training import TrainResult
from tests.payoffs.audit_fixtures import ToySource, train_tiny

SOUND_CW = AttackerStrategy("cw", {"search_steps": 1, "iterations": 100})


@pytest.fixture(scope="module")
def tiny(mnist5k: Dataset):
    return train_tiny(mnist5k)


@pytest.fixture(scope="module")
def test_split(mnist5k: Dataset) -> TestSplit:
    return TestSplit(mnist5k.x_test, mnist5k.y_test, mnist5k.num_classes)


@pytest.fixture
def flawed_plugins():
    """The flawed defenses and attack, registered like any plug-in, removed afterwards."""
    DEFENSES.register("masked", "tests.payoffs.audit_fixtures:MaskedGradient", (), "zero backward")
    DEFENSES.register("quantize", "tests.payoffs.audit_fixtures:Quantize", (), "round to quarters")
    DEFENSES.register("fixed_seed", "tests.payoffs.audit_fixtures:FixedSeedDropout", (), "one mask forever")
    DEFENSES.register("grad_off", "tests.payoffs.audit_fixtures:GradOffDropout", (), "off under autograd")
    ATTACKS.register("mode_switch", "tests.payoffs.audit_fixtures:ModeSwitchingPGD",
                     (Param("steps", int, 5, "steps", low=1),), "calls model.train()")
    yield
    for name in ("masked", "quantize", "fixed_seed", "grad_off"):
        DEFENSES.unregister(name)
    ATTACKS.unregister("mode_switch")


def audit(model, data, defenders, attacker, slot="dropout", **settings):
    evidence = audit_model(model, data, defenders, attacker, slot=slot, saturated=eot_step_saturated,
                           settings=AuditSettings(**settings))
    return evidence, decide(evidence)


def verdicts(verdict, index: int = 0) -> dict[int, str]:
    return {c.number: c.verdict for c in verdict.defenders[index].checks}


def parts(verdict, number: int, index: int = 0) -> dict[str, str]:
    return dict(verdict.defenders[index].check(number).parts)


# ---------------------------------------------------------------------------------------------- the five cases
def test_undefended_user_model_passes_every_check_and_saturates_at_k1(tiny) -> None:
    """Through the model-source interface, on a non-paper architecture with a named slot; 60 images are the fewest
    at which "about 100%" (above 90%) and "a rise below 5 points" can be shown when every attack succeeds."""
    evidence = audit_source(ToySource(tiny), [DefenderStrategy("none")], SOUND_CW, saturated=eot_step_saturated,
                            settings=AuditSettings(n_images=60, eot_max=8), slot="act")
    verdict = decide(evidence)
    assert verdicts(verdict) == {n: PASS for n in range(1, 8)}, verdict
    d = verdict.defenders[0]
    assert d.knee == 1 and d.overall == PASS and not d.attacker_below_knee
    a = evidence.defenders[0]
    assert a.eot.points[1].step.identical and a.eot.stopped == "saturated"
    assert a.fixed_mask.frozen_asr.low > 0.9 and a.unbounded.majority.mean == 1.0
    assert evidence.model.slot == "act" and evidence.model.identity == "tiny-user-model"
    assert evidence.images == 60 and evidence.attacks == 60
    # Check 8: every check's cost, counted around it; the attacks' runs cost forward and backward passes.
    assert [n for n, _ in a.costs] == list(range(1, 8))
    assert a.total_cost.forwards > a.total_cost.backwards > 0
    assert dict(a.costs)[5].backwards > dict(a.costs)[1].backwards  # doubled iterations cost more than one run


@pytest.mark.parametrize("defense", ["masked", "quantize"])
def test_masked_defender_fails_gradients_and_unbounded(small_trained: TrainResult, test_split, flawed_plugins,
                                                       defense: str) -> None:
    _, verdict = audit(small_trained.model, test_split, [DefenderStrategy(defense)],
                       AttackerStrategy("cw", {"search_steps": 1, "iterations": 20}), n_images=10, probe_images=10,
                       checks=(3, 7))
    v = verdicts(verdict)
    assert v[3] == FAIL and v[7] == FAIL
    assert parts(verdict, 7)["no zero gradients"] == FAIL and parts(verdict, 7)["no NaN or inf"] == PASS


def test_crippled_attack_fails_fixed_mask_and_iterations(small_trained: TrainResult, test_split) -> None:
    """A learning rate near zero: against the undefended model C&W gets nowhere (check 2) and its loss is still
    falling in a straight line when it stops (check 5: Pintor's incomplete optimization)."""
    evidence, verdict = audit(small_trained.model, test_split, [DefenderStrategy("none")],
                              AttackerStrategy("cw", {"search_steps": 1, "iterations": 30, "learning_rate": 1e-4}),
                              n_images=10, checks=(2, 5))
    v = verdicts(verdict)
    assert v[2] == FAIL and parts(verdict, 2)["about 100%"] == FAIL
    assert v[5] == FAIL and parts(verdict, 5)["loss flat"] == FAIL
    assert evidence.defenders[0].iterations.flatness.low > 0.05
    assert v[1] == v[3] == "not run"


def test_dropout_eot_curve_rises_then_flattens(small_trained: TrainResult, test_split) -> None:
    """C&W with the expected-logits test against r' = 0.5: averaging more dropout samples per step helps up to a
    point (here about 17% at k = 1, 35% at k = 8), then stops helping."""
    attacker = AttackerStrategy("cw", {"search_steps": 1, "iterations": 30, "abort_early": False}, 1, "expected")
    evidence, verdict = audit(small_trained.model, test_split, [DefenderStrategy.dropout(0.5)], attacker,
                              n_images=30, eot_max=16, checks=(4,))
    eot = evidence.defenders[0].eot
    knee = verdict.defenders[0].knee
    assert knee is not None and 1 < knee <= 8 and eot.stopped == "saturated"
    assert eot.point(knee).gain.low > 0  # rises: EOT at the knee beats k = 1 beyond its interval
    assert eot.point(2 * knee).step.high < EOT_MARGIN  # and then flattens
    assert eot.points[1].step.high >= EOT_MARGIN and not eot.deterministic
    assert verdict.defenders[0].attacker_below_knee


def test_random_user_defender_on_user_model(tiny) -> None:
    """Dropout after the user model's ``act``: random, kept random inside the attack, trunk shared."""
    evidence = audit_source(ToySource(tiny), [DefenderStrategy.dropout(0.3)], SOUND_CW, saturated=eot_step_saturated,
                            settings=AuditSettings(n_images=5, probe_images=20, checks=(1,)), slot="act")
    r = evidence.defenders[0].randomness
    assert decide(evidence).defenders[0].check(1).verdict == PASS
    assert r.declared_random and r.logits_differ.mean == 1.0 and r.redraw_changes.mean > 0.9
    assert evidence.model.split == "shared trunk"


# ---------------------------------------------------------------------------------------------- check 1's failures
@pytest.mark.parametrize("defense,passes", [("fixed_seed", FAIL), ("grad_off", PASS)])
def test_randomness_that_is_not_real_or_not_kept_fails_check1(tiny, test_split, flawed_plugins, defense,
                                                              passes) -> None:
    """One mask forever fails both parts; a defense that turns itself off under autograd looks random when
    evaluated but is deterministic inside the attack."""
    _, verdict = audit(tiny, test_split, [DefenderStrategy(defense)], SOUND_CW, slot="act",
                       n_images=3, probe_images=20, checks=(1,))
    p = parts(verdict, 1)
    assert p["repeated passes"] == passes and p["inside the attack"] == FAIL and p["no mode switch"] == PASS


def test_attack_that_switches_modes_is_caught_and_undone(tiny, test_split, flawed_plugins) -> None:
    evidence, verdict = audit(tiny, test_split, [DefenderStrategy.dropout(0.5)], AttackerStrategy("mode_switch"),
                              slot="act", n_images=3, probe_images=10, checks=(1,))
    r = evidence.defenders[0].randomness
    assert parts(verdict, 1)["no mode switch"] == FAIL and r.mode_switched
    assert r.training_after > r.training_before and r.training_during > r.training_before
    assert not any(m.training for m in tiny.modules())  # the audit restored the model's modes


# ---------------------------------------------------------------------------------------------- pieces
def test_frozen_defense_replays_one_draw(small_trained: TrainResult) -> None:
    from payoffs.audit.wrappers import FrozenDefense
    from payoffs.defenses import TestTimeDropout
    from payoffs.sampling import sample_logits
    from payoffs.slots import DefendedModel

    frozen = FrozenDefense(TestTimeDropout(0.5), key=123)
    h = torch.ones(4, 50)
    a, b = frozen(h), frozen(h)
    assert torch.equal(a, b) and torch.equal(a[0], a[3])  # every call and every example: one mask
    assert 0 < int((a == 0).sum()) < a.numel()
    net = DefendedModel(small_trained.model, frozen, "dropout")
    x = torch.rand(3, 1, 28, 28)
    s = sample_logits(net, x, 5)
    assert torch.equal(s[0], s[4])
    assert not torch.equal(FrozenDefense(TestTimeDropout(0.5), key=124)(h), a)


def test_probe_leaves_the_attack_unchanged(small_trained: TrainResult) -> None:
    from payoffs.attacks import make_attack
    from payoffs.audit.wrappers import Probe
    from payoffs.defenses import TestTimeDropout
    from payoffs.slots import DefendedModel

    x = torch.rand(4, 1, 28, 28)
    t = torch.tensor([1, 2, 3, 4])
    attack = make_attack("pgd", steps=3, seed=0)
    defense = TestTimeDropout(0.5)
    plain = attack(DefendedModel(small_trained.model, defense, "dropout"), x, t)
    probe = Probe(defense, calls=2, seed=9)
    probed = attack(DefendedModel(small_trained.model, probe, "dropout"), x, t)
    assert torch.equal(plain.x_adv, probed.x_adv)
    assert probe.probed == 2 and probe.rows == 1 + 4 and probe.changed == probe.rows  # the class check, a step
    still = Probe(nn.Identity(), calls=2, seed=9)
    attack(DefendedModel(small_trained.model, still, "dropout"), x, t)
    assert still.changed == 0 and still.rows == 5


@pytest.mark.parametrize("name,params,segment", [("pgd", {"steps": 4}, None), ("cw", {"search_steps": 2,
                                                                                         "iterations": 3}, 3)])
def test_loss_tracing_records_every_step_and_changes_nothing(name, params, segment) -> None:
    from payoffs.attacks import make_attack
    from payoffs.attacks.base import tracing_losses
    from payoffs.audit.loss import LossTrace
    from tests.payoffs.attack_fixtures import dropout_mlp

    model = dropout_mlp()
    x, t = torch.rand(5, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4])
    attack = make_attack(name, seed=1, eot=2, **params)
    plain = attack(model, x, t)
    trace = LossTrace()
    with tracing_losses(trace):
        traced = attack(model, x, t)
    assert torch.equal(plain.x_adv, traced.x_adv)
    steps, values = trace.matrix(list(range(5)))
    expected = 4 if name == "pgd" else 6
    assert len(steps) <= expected and steps[0] == 0 and np.isfinite(values[:, 0]).all()
    assert (values[np.isfinite(values)] >= 0).all()  # cross-entropy and C&W's L2 + c f are never negative
    curve = trace.curve(list(range(5)), segment)
    assert curve.active[0] == 5 and len(curve.mean) == len(steps)


def test_per_example_loss_splits_the_summed_loss() -> None:
    from payoffs.attacks.base import per_example_loss
    from payoffs.attacks.fgsm import targeted_ce

    z, t = torch.randn(3, 6, 10), torch.randint(0, 10, (6,))
    per = per_example_loss(targeted_ce, z, t)
    assert per.shape == (6,) and torch.allclose(per.sum(), targeted_ce(z, t))
    assert torch.allclose(per[2], targeted_ce(z[:, 2:3], t[2:3]))


def test_flatness_indicator_on_known_paths() -> None:
    from payoffs.audit.loss import example_shares

    steps = np.arange(100)
    straight = 10.0 - 0.05 * steps
    converged = 1.0 + 9.0 * np.exp(-steps / 5.0)
    values = np.stack([straight, converged, np.full(100, 3.0)])
    shares = example_shares(steps, values, segment=100)
    assert shares[0] == pytest.approx(1 / 9, rel=1e-6)
    assert abs(shares[1]) < 1e-6 and shares[2] == 0.0
    # Two optimization runs (C&W's search steps): each restarts, each is judged on its own.
    two = example_shares(np.arange(200), np.concatenate([straight, converged])[None, :], segment=100)
    assert two[0] == pytest.approx((1 / 9) / 2, rel=1e-6)
    # An example that stopped early (NaN afterwards) is judged on the steps it took.
    early = np.full((1, 100), np.nan)
    early[0, :30] = 10.0 - 0.05 * np.arange(30)
    assert example_shares(steps, early, segment=100)[0] == pytest.approx(1 / 9, rel=1e-6)


def test_paired_difference_intervals() -> None:
    from payoffs.audit.estimates import paired, rate

    image = np.repeat(np.arange(20), 2)
    ones = np.ones(40)
    same = paired(ones, ones, image, rate(ones, image, 10), rate(ones, image, 10), identical=True)
    assert same.identical and (same.low, same.high) == (0.0, 0.0)
    # Both at 100% on every attack, two runs: the images cannot show the uncertainty; the exact rates' errors can.
    fallback = paired(ones, ones, image, rate(ones, image, 10), rate(ones, image, 10))
    assert not fallback.identical and fallback.low < 0 < fallback.high
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 1.0, 40)
    b = a - 0.2
    d = paired(a, b, image, rate(a, image, 10), rate(b, image, 10))
    assert d.mean == pytest.approx(0.2) and d.low == pytest.approx(0.2) and d.high == pytest.approx(0.2)


def test_variants_keep_what_they_do_not_vary() -> None:
    from payoffs.audit.variants import doubled, eot_ladder, single_and_iterative, unbounded

    cw = AttackerStrategy("cw", {"learning_rate": 1e-4, "search_steps": 3}, 4, "expected")
    more, changed = doubled(cw)
    assert changed == {"iterations": [100, 200], "search_steps": [3, 6]}
    assert more.param("learning_rate") == 1e-4 and more.eot == 4 and more.success_test == "expected"
    big, how = unbounded(cw, AuditSettings())
    assert big.param("initial_c") == 1e4 and big.param("learning_rate") == 1e-4 and "C&W" in how
    pgd, _ = unbounded(AttackerStrategy("fgsm"), AuditSettings())
    assert pgd.attack == "pgd" and pgd.param("eps") == 1.0
    fgsm, pgd = single_and_iterative(AttackerStrategy("pgd", {"eps": 0.1}, 2), AuditSettings(order_steps=10))
    assert fgsm.param("eps") == pgd.param("eps") == 0.1 and pgd.param("step_size") == pytest.approx(0.025)
    assert fgsm.eot == pgd.eot == 2
    assert doubled(AttackerStrategy("fgsm")) is None
    assert eot_ladder(20) == [1, 2, 4, 8, 16]


def test_settings_are_checked_at_the_boundary() -> None:
    from payoffs.errors import DefdropError

    with pytest.raises(DefdropError, match="n_images"):
        AuditSettings(n_images=0)
    with pytest.raises(DefdropError, match="checks"):
        AuditSettings(checks=(9,))
    s = AuditSettings.from_text({"eot_max": "8", "noise_scale": "0.01"}, "7, 3")
    assert s.eot_max == 8 and s.noise_scale == 0.01 and s.checks == (3, 7)
    with pytest.raises(DefdropError, match="no parameter"):
        AuditSettings.from_text({"n_imgs": "3"})
