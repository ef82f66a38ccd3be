"""Run the chosen checks for one attacker strategy against each defender strategy of one model.

:func:`audit_model` takes a loaded ``nn.Module`` (any architecture, the defense after any named layer);
:func:`audit_source` loads a :class:`payoffs.sources.ModelSource` (a defdrop checkpoint, or a user's model) and its
test data first. The EOT check stops on a decision rule passed in as ``saturated`` (payoffs decides nothing:
``gameplay.audit_rules.eot_step_saturated`` is the one to pass).
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
from torch import nn

from payoffs.audit.checks import (
    check_eot,
    check_fixed_mask,
    check_gradients,
    check_iterations,
    check_ordering,
    check_randomness,
    check_unbounded,
)
from payoffs.audit.evidence import AuditEvidence, Cost, DefenderAudit, Estimate, ModelInfo
from payoffs.audit.settings import AuditSettings
from payoffs.audit.target import AttackSet, AuditTarget, attack_set
from payoffs.errors import DefdropError
from payoffs.sampling import counting
from payoffs.slots import DefendedModel, check_slot, default_slot, undefended
from payoffs.sources import DataSource, ModelSource, TestSplit, data_for
from payoffs.strategy import AttackerStrategy, DefenderStrategy

Log = Callable[[str], None]
CHECK_FIELDS = {1: "randomness", 2: "fixed_mask", 3: "unbounded", 4: "eot", 5: "iterations", 6: "ordering",
                7: "gradients"}


def _run_check(number: int, t: AuditTarget, saturated: Callable[[Estimate], bool]):
    if number == 1:
        return check_randomness(t)
    if number == 2:
        return check_fixed_mask(t)
    if number == 3:
        return check_unbounded(t)
    if number == 4:
        return check_eot(t, saturated)
    if number == 5:
        return check_iterations(t)
    if number == 6:
        return check_ordering(t)
    return check_gradients(t)


def audit_defender(model: nn.Module, slot: str, defender: DefenderStrategy, attacker: AttackerStrategy,
                   inputs: AttackSet, settings: AuditSettings, *, saturated: Callable[[Estimate], bool],
                   log: Log | None = None) -> DefenderAudit:
    """Every chosen check of ``settings`` for one defender; the cost of each is counted around it (check 8)."""
    t = AuditTarget(model, slot, defender, attacker, settings, inputs, log=log)
    found: dict[str, object] = {}
    costs: list[tuple[int, Cost]] = []
    for number in settings.checks:
        start = time.perf_counter()
        with counting() as cost:
            found[CHECK_FIELDS[number]] = _run_check(number, t, saturated)
        costs.append((number, Cost(cost.forwards, cost.backwards, cost.trunk_forwards,
                                   time.perf_counter() - start)))
    runs = tuple(run.summary for run in t.runs.values())
    return DefenderAudit(defender.id, defender.defense, dict(defender.params), t.declared_random, **found,
                         costs=tuple(costs), runs=runs)


def audit_model(model: nn.Module, data: TestSplit, defenders: Sequence[DefenderStrategy], attacker: AttackerStrategy,
                *, slot: str | None = None, saturated: Callable[[Estimate], bool],
                settings: AuditSettings | None = None, identity: str = "", label: str = "model",
                dataset: str | None = None, data_name: str = "", log: Log | None = None) -> AuditEvidence:
    """Audit ``attacker`` against each of ``defenders`` placed after layer ``slot`` of ``model`` (default: the
    model's ``defense_slot``). The model is used as it is (its weights shared, never copied or switched to
    another mode)."""
    settings = settings or AuditSettings()
    if not defenders:
        raise DefdropError("the audit needs at least one defender strategy")
    base = undefended(model)
    slot = slot or (model.slot if isinstance(model, DefendedModel) else default_slot(base))
    if slot is None:
        raise DefdropError("the model names no defense slot; name the layer the defense follows")
    check_slot(base, slot)
    start = time.perf_counter()
    inputs = attack_set(base, data, settings)
    audits = tuple(audit_defender(base, slot, d, attacker, inputs, settings, saturated=saturated, log=log)
                   for d in defenders)
    probe = DefendedModel(base, defenders[0].module(), slot)
    probe.trunk(inputs.x[:2].to(next(base.parameters()).device))  # the split is checked on a first batch
    info = ModelInfo(identity, label, dataset, slot, "shared trunk" if not probe.split_reason else
                     f"no split ({probe.split_reason}): every defender sample runs the whole model")
    return AuditEvidence(info, {**attacker.to_dict(), "id": attacker.id}, settings.to_dict(), data_name,
                         inputs.n_images, len(inputs.x), audits, time.perf_counter() - start)


def audit_source(source: ModelSource, defenders: Sequence[DefenderStrategy], attacker: AttackerStrategy, *,
                 saturated: Callable[[Estimate], bool], settings: AuditSettings | None = None,
                 data: DataSource | None = None, slot: str | None = None, device: torch.device | str = "cpu",
                 log: Log | None = None) -> AuditEvidence:
    """:func:`audit_model` on a model source (loaded on ``device``) and its test data (``data`` overrides the
    dataset its description names)."""
    model = source.load(device)
    data = data_for(source, data)
    return audit_model(model, data.load_test(), defenders, attacker, slot=slot or source.default_slot,
                       saturated=saturated, settings=settings, identity=source.identity,
                       label=source.description.label, dataset=source.description.dataset, data_name=data.identity,
                       log=log)
