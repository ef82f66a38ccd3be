"""What one defender's audit attacks and how it runs an attack: the attacked images, the three networks (the
defended model, one frozen draw of it, the undefended model; weights shared), and a cache of attack runs so
checks that need the same run (the audited attacker as given serves checks 1, 4, 5 and 6) pay for it once.

Every run of one audit uses the same attack seed and the same evaluation keys (common random numbers): paired
differences between runs then measure what the check varies, not another draw. Each purpose of randomness has its
own seed, derived from the audit's seed (:func:`audit_seed`), so an audit is reproducible.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from payoffs import noise
from payoffs.attacks import make_attack
from payoffs.attacks.base import tracing_losses
from payoffs.audit.estimates import rate
from payoffs.audit.evidence import Cost, Estimate, Run
from payoffs.audit.loss import LossTrace
from payoffs.audit.settings import AuditSettings
from payoffs.audit.variants import segment_length
from payoffs.audit.wrappers import FrozenDefense, Probe, training_modules
from payoffs.cell import MAJORITY, attack_inputs
from payoffs.defenses import is_deterministic
from payoffs.evaluation import first_correct, sampled_correct
from payoffs.sampling import counting
from payoffs.slots import DefendedModel
from payoffs.sources import TestSplit
from payoffs.strategy import AttackerStrategy, DefenderStrategy

# What each seed of an audit is for (the labels of :func:`audit_seed`).
ATTACKS, EVALUATION, FROZEN_MASK, PROBE, PASSES, GRADIENTS, NOISE = 1, 2, 3, 4, 5, 7, 9


def audit_seed(seed: int, purpose: int) -> int:
    """A 31-bit seed for one purpose, keyed by the audit's seed (:func:`payoffs.noise.base_key`)."""
    return noise.base_key(seed, noise.AUDIT, purpose) & 0x7FFFFFFF


@dataclass
class AttackRun:
    """One attack run, in tensors and arrays: ``success`` per attack (share of the M fresh samples saying the
    target), ``believed`` (the attacker's own test), the loss trace and, when probed, the probe."""

    name: str
    attacker: AttackerStrategy
    against: str
    x_adv: torch.Tensor
    success: np.ndarray
    believed: np.ndarray
    l2: np.ndarray
    trace: LossTrace
    cost: Cost
    probe: Probe | None = None
    summary: Run | None = None


@dataclass(frozen=True, eq=False)
class AttackSet:
    """The attacked inputs (image-major: ``image`` = each attack's test-image index, the cluster of its
    interval) and the probe images of the forward-only checks."""

    x: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    image: np.ndarray
    probe_x: torch.Tensor
    probe_y: torch.Tensor
    num_classes: int

    @property
    def n_images(self) -> int:
        return int(np.unique(self.image).size)


def attack_set(base: nn.Module, data: TestSplit, settings: AuditSettings) -> AttackSet:
    """The first ``n_images`` test images the undefended model gets right, each towards ``targets`` classes
    (label + j) mod K, j = 1, 2, ...; and the first ``probe_images`` it gets right."""
    x, targets, labels, image = attack_inputs(base, data.x, data.y, settings.n_images, data.num_classes)
    k = data.num_classes
    keep = (targets - labels) % k <= min(settings.targets, k - 1)
    probe = first_correct(base, data.x, data.y, settings.probe_images)
    return AttackSet(x[keep], targets[keep], labels[keep], image[keep].numpy(), data.x[probe], data.y[probe], k)


@dataclass
class AuditTarget:
    """One defender on one model, ready to be attacked (see the module docstring)."""

    base: nn.Module
    slot: str
    defender: DefenderStrategy
    attacker: AttackerStrategy
    settings: AuditSettings
    inputs: AttackSet
    defense: nn.Module = field(init=False)
    runs: dict[tuple, AttackRun] = field(default_factory=dict)
    log: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.x, self.targets, self.image = self.inputs.x, self.inputs.targets, self.inputs.image
        self.probe_x, self.probe_y, self.num_classes = self.inputs.probe_x, self.inputs.probe_y, self.inputs.num_classes
        self.defense = self.defender.module()
        self.net = DefendedModel(self.base, self.defense, self.slot)
        self.ids = torch.arange(len(self.x))
        self.device = next(self.base.parameters()).device
        self.attack_seed = audit_seed(self.settings.seed, ATTACKS)
        self.training_after = self.training_modules()
        self.eval_seed = audit_seed(self.settings.seed, EVALUATION)

    # ------------------------------------------------------------------ the networks
    @property
    def declared_random(self) -> bool:
        return not is_deterministic(self.defense)

    def effective(self, against: str) -> str:
        """Which network a run really attacks: for the ``none`` defender the frozen and undefended networks *are*
        the defended one, and a frozen draw of a defense that draws nothing is that defense."""
        if self.defender.defense == "none":
            return "defended"
        if against == "frozen" and not self.declared_random:
            return "defended"
        return against

    def run_key(self, attacker: AttackerStrategy, against: str) -> tuple:
        """What determines a run. Against a network that draws nothing, EOT's k copies are one evaluation
        expanded (:func:`payoffs.sampling.sample_logits`), so k does not enter: the runs are the same computation."""
        against = self.effective(against)
        if against in ("undefended", "frozen") or not self.declared_random:
            attacker = replace(attacker, eot=1)
        return attacker, against

    def network(self, against: str, probe: Probe | None = None) -> nn.Module:
        against = self.effective(against)
        if against == "defended":
            return self.net if probe is None else DefendedModel(self.base, probe, self.slot)
        if against == "frozen":
            frozen = FrozenDefense(self.defense, audit_seed(self.settings.seed, FROZEN_MASK))
            return DefendedModel(self.base, frozen, self.slot)
        if against == "undefended":
            return DefendedModel(self.base, nn.Identity(), self.slot)
        raise ValueError(f"unknown network {against!r}")

    # ------------------------------------------------------------------ runs
    def run(self, name: str, attacker: AttackerStrategy, against: str = "defended", *,
            probe: bool = False) -> AttackRun:
        """The attack ``attacker`` against ``against``, judged under M fresh samples of that network (cached)."""
        key = self.run_key(attacker, against)
        cached = self.runs.get(key)
        if cached is not None and (cached.probe is not None or not probe):
            return cached
        if self.log is not None:
            self.log(f"{self.defender.id}: {name} ({attacker.id} against the {against} model)")
        probe_module = None
        if probe:
            probe_module = Probe(self.defense, self.settings.probe_calls, audit_seed(self.settings.seed, PROBE),
                                 (self.base,))
        net = self.network(against, probe_module)
        attack = make_attack(attacker.attack, **attacker.attack_kwargs(), seed=self.attack_seed,
                             batch_size=self.settings.batch_size)
        trace = LossTrace()
        start = time.perf_counter()
        modes = [(m, m.training) for m in (*self.base.modules(), *self.defense.modules())]
        with counting() as cost, tracing_losses(trace):
            try:
                result = attack(net, self.x.to(self.device), self.targets.to(self.device), self.ids)
                self.training_after = self.training_modules()
            finally:  # an attack that switched modes is reported by check 1, and must not change the other runs
                for module, training in modes:
                    module.training = training
            success = self.evaluate(self.network(against), result.x_adv)
        run = AttackRun(name, attacker, self.effective(against), result.x_adv.detach(), success,
                        result.success.cpu().numpy(), result.l2.cpu().numpy(), trace,
                        Cost(cost.forwards, cost.backwards, cost.trunk_forwards, time.perf_counter() - start),
                        probe_module)
        run.summary = self.summarize(run)
        self.runs[key] = run
        return run

    def transfer(self, source: AttackRun) -> AttackRun:
        """``source``'s examples (crafted on another network) judged under fresh samples of the defended model; the
        run itself when it attacked the defended model (the ``none`` defender)."""
        if source.against == "defended":
            return source
        key = ("transfer", source.attacker, source.against)
        if key in self.runs:
            return self.runs[key]
        start = time.perf_counter()
        with counting() as cost:
            success = self.evaluate(self.net, source.x_adv)
        run = AttackRun(f"{source.name}, judged on the defender", source.attacker, "transfer", source.x_adv,
                        success, source.believed, source.l2, LossTrace(),
                        Cost(cost.forwards, cost.backwards, cost.trunk_forwards, time.perf_counter() - start))
        run.summary = self.summarize(run)
        self.runs[key] = run
        return run

    def evaluate(self, net: nn.Module, x_adv: torch.Tensor) -> np.ndarray:
        return sampled_correct(net, x_adv, self.targets, self.settings.eval_samples, seed=self.eval_seed,
                               ids=self.ids, purpose=noise.EVAL)

    def rate(self, values: np.ndarray) -> Estimate:
        return rate(values, self.image, self.settings.eval_samples, seed=self.settings.seed)

    def summarize(self, run: AttackRun) -> Run:
        majority = (run.success > MAJORITY).astype(np.float64)
        won = run.success > MAJORITY
        return Run(run.name, run.attacker.id, run.attacker.to_dict(), run.against, self.rate(run.success),
                   self.rate(majority), float(np.mean(run.believed)) if run.believed.size else float("nan"),
                   float(np.mean(run.l2[won])) if won.any() else float("nan"), run.cost,
                   run.trace.curve(self.ids.tolist(), segment_length(run.attacker)))

    def training_modules(self) -> int:
        """Modules of the model and the defense in training mode (``training_after``: as the last attack left
        them, before the audit restored their modes)."""
        return training_modules(self.base, self.defense)
