"""The audit's checks, one function each: measure, return frozen evidence (no verdicts; see
:mod:`gameplay.audit_rules`). Each takes the :class:`payoffs.audit.target.AuditTarget` of one defender.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from payoffs import noise
from payoffs.attacks.objectives import cw_margin
from payoffs.audit.estimates import binomial_share, paired, rate
from payoffs.audit.evidence import (
    EotEvidence,
    EotPoint,
    Estimate,
    FixedMaskEvidence,
    GradientEvidence,
    IterationsEvidence,
    OrderingEvidence,
    RandomnessEvidence,
    UnboundedEvidence,
)
from payoffs.audit.loss import WINDOWS, flatness
from payoffs.audit.target import GRADIENTS, NOISE, PASSES, AttackRun, AuditTarget, audit_seed
from payoffs.audit.variants import (
    UNBUDGETED,
    doubled,
    eot_ladder,
    order_eps,
    segment_length,
    single_and_iterative,
    unbounded,
    with_eot,
)
from payoffs.sampling import sample_input_gradients, sample_logits

AS_GIVEN = "as given"
"""The name of the audited attacker's own run against the defender."""
PROBE_CHUNK = 256
"""Probe images per forward pass of the forward-only checks."""


def baseline(t: AuditTarget, *, probe: bool = False) -> AttackRun:
    """The audited attacker, as given, against the defender (shared by checks 1, 4, 5 and 6)."""
    return t.run(AS_GIVEN, t.attacker, "defended", probe=probe)


def _difference(t: AuditTarget, a: AttackRun, b: AttackRun) -> Estimate:
    return paired(a.success, b.success, t.image, a.summary.asr, b.summary.asr, identical=a is b,
                  seed=t.settings.seed)


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(n, i + PROBE_CHUNK)) for i in range(0, n, PROBE_CHUNK)]


# ---------------------------------------------------------------------------------------------- 1
def check_randomness(t: AuditTarget) -> RandomnessEvidence:
    """Check 1: plain repeated forward passes (the global RNG, as a user calls the model) differ at this defender,
    and the attack meets a random defender at every step (no mode switch; a redraw changes the output)."""
    x = t.probe_x.to(t.device)
    seed = audit_seed(t.settings.seed, PASSES)
    devices = [t.device] if t.device.type == "cuda" else []
    differ = np.zeros(len(x))
    flips = np.zeros(len(x))
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for sl in _chunks(len(x)):
            passes = torch.stack([sample_logits(t.net, x[sl], 1)[0] for _ in range(t.settings.passes)])
            differ[sl] = (passes != passes[:1]).flatten(2).any(2).any(0).float().cpu().numpy()
            preds = passes.argmax(-1)
            flips[sl] = (preds != preds[:1]).any(0).float().cpu().numpy()
    units = np.arange(len(x))
    before = t.training_modules()
    run = baseline(t, probe=True)
    after = t.training_after
    probe = run.probe
    during = max(probe.training_seen, key=lambda v: abs(v - before)) if probe.training_seen else before
    return RandomnessEvidence(
        declared_random=t.declared_random, passes=t.settings.passes, images=len(x),
        logits_differ=rate(differ, units, t.settings.passes, seed=t.settings.seed),
        predictions_differ=rate(flips, units, t.settings.passes, seed=t.settings.seed), run=run.name,
        probed_calls=probe.probed, redraw_changes=binomial_share(probe.changed, probe.rows),
        training_before=before, training_during=during, training_after=after)


# ---------------------------------------------------------------------------------------------- 2
def check_fixed_mask(t: AuditTarget) -> FixedMaskEvidence:
    """Check 2: the attack against one frozen draw of the defender and against the undefended model."""
    frozen = t.run("one frozen draw", t.attacker, "frozen")
    plain = t.run("undefended", t.attacker, "undefended")
    return FixedMaskEvidence(frozen.name, plain.name, frozen.summary.asr, plain.summary.asr,
                             _difference(t, frozen, plain), t.attacker.attack in UNBUDGETED)


# ---------------------------------------------------------------------------------------------- 3
def check_unbounded(t: AuditTarget) -> UnboundedEvidence:
    """Check 3: the attack with its distortion budget removed, judged by majority success under fresh samples."""
    attacker, how = unbounded(t.attacker, t.settings)
    run = t.run("unbounded", attacker)
    return UnboundedEvidence(run.name, how, run.summary.majority, run.summary.asr)


# ---------------------------------------------------------------------------------------------- 4
def check_eot(t: AuditTarget, saturated: Callable[[Estimate], bool]) -> EotEvidence:
    """Check 4: ASR against k = 1, 2, 4, ... EOT samples; stops at the first doubling ``saturated`` accepts (the
    decision rule, :func:`gameplay.audit_rules.eot_step_saturated`, passed in) or at ``eot_max``."""
    points: list[EotPoint] = []
    first: AttackRun | None = None
    previous: AttackRun | None = None
    stopped = "eot_max"
    for k in eot_ladder(t.settings.eot_max):
        attacker = with_eot(t.attacker, k)
        run = t.run(AS_GIVEN if attacker == t.attacker else f"EOT k = {k}", attacker)
        step = None if previous is None else _difference(t, run, previous)
        gain = None if first is None else _difference(t, run, first)
        points.append(EotPoint(k, run.name, run.summary.asr, step, gain))
        first = first or run
        previous = run
        if step is not None and saturated(step):
            stopped = "saturated"
            break
    return EotEvidence(tuple(points), t.attacker.eot, t.settings.eot_max, not t.declared_random, stopped)


# ---------------------------------------------------------------------------------------------- 5
def check_iterations(t: AuditTarget) -> IterationsEvidence:
    """Check 5: doubling the iterations (and C&W's search steps), and the loss path's flatness at its end."""
    more = doubled(t.attacker)
    segment = segment_length(t.attacker)
    if more is None or segment is None:
        return IterationsEvidence(applicable=False)
    attacker, changed = more
    base = baseline(t)
    twice = t.run("doubled iterations", attacker)
    flat = flatness(base.trace, t.ids.tolist(), t.image, segment, seed=t.settings.seed)
    return IterationsEvidence(True, base.name, twice.name, changed, _difference(t, twice, base), flat, WINDOWS)


# ---------------------------------------------------------------------------------------------- 6
def check_ordering(t: AuditTarget) -> OrderingEvidence:
    """Check 6: PGD against FGSM at one eps; the attack white-box against its examples from the undefended model."""
    fgsm_attacker, pgd_attacker = single_and_iterative(t.attacker, t.settings)
    fgsm = t.run("FGSM", fgsm_attacker)
    pgd = t.run("PGD", pgd_attacker)
    white = baseline(t)
    transfer = t.transfer(t.run("undefended", t.attacker, "undefended"))
    return OrderingEvidence(order_eps(t.attacker), pgd.name, fgsm.name, pgd.summary.asr, fgsm.summary.asr,
                            _difference(t, pgd, fgsm), white.name, transfer.name, white.summary.asr,
                            transfer.summary.asr, _difference(t, white, transfer))


# ---------------------------------------------------------------------------------------------- 7
def objective_name(attack: str) -> str:
    return "C&W margin max_{i != t} Z_i - Z_t" if attack == "cw" else "cross-entropy towards the target"


def _objective(attack: str, target: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The attack's objective per row of ``(rows, C)`` logits: C&W's margin, else the targeted cross-entropy."""
    if attack == "cw":
        return lambda z: cw_margin(z, target)
    return lambda z: F.cross_entropy(z, target, reduction="none")


def check_gradients(t: AuditTarget) -> GradientEvidence:
    """Check 7: sampled input gradients of the attack's objective at the probe images (towards (label + 1) mod K)
    are neither all zero nor NaN, and predictions do not flip under tiny uniform input noise (same defender
    draws at both inputs)."""
    x = t.probe_x.to(t.device)
    target = ((t.probe_y + 1) % t.num_classes).to(t.device)
    k = t.settings.gradient_samples
    ids = torch.arange(len(x), device=t.device)
    seed = audit_seed(t.settings.seed, GRADIENTS)
    zero = np.zeros(len(x))
    bad = np.zeros(len(x))
    flips = np.zeros(len(x))
    for sl in _chunks(len(x)):
        objective = _objective(t.attacker.attack, target[sl].repeat(k))
        grads = sample_input_gradients(t.net, x[sl], k, noise.row_keys(seed, ids[sl], noise.AUDIT, GRADIENTS),
                                       objective).flatten(2)
        zero[sl] = (grads == 0).all(2).float().mean(0).cpu().numpy()
        bad[sl] = (~torch.isfinite(grads)).any(2).float().mean(0).cpu().numpy()
        with torch.no_grad():
            with noise.keyed(noise.row_keys(seed, ids[sl], noise.AUDIT, NOISE)):
                shift = (2.0 * noise.uniform(x[sl].shape, x.device, x.dtype) - 1.0) * t.settings.noise_scale
            keys = noise.row_keys(seed, ids[sl], noise.AUDIT, PASSES)
            m = t.settings.eval_samples
            clean = sample_logits(t.net, x[sl], m, keys).argmax(-1)
            shaken = sample_logits(t.net, (x[sl] + shift).clamp(0.0, 1.0), m, keys).argmax(-1)
            flips[sl] = (clean != shaken).float().mean(0).cpu().numpy()
    units = np.arange(len(x))
    s = t.settings.seed
    return GradientEvidence(objective_name(t.attacker.attack), len(x), k, rate(zero, units, k, seed=s),
                            rate(bad, units, k, seed=s), int(round(float(bad.sum()) * k)), t.settings.noise_scale,
                            rate(flips, units, t.settings.eval_samples, seed=s))


__all__ = ["AS_GIVEN", "baseline", "check_eot", "check_fixed_mask", "check_gradients",
           "check_iterations", "check_ordering", "check_randomness", "check_unbounded"]
