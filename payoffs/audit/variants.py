"""The attacker strategies an audit derives from the audited one (torch-free): EOT k, doubled iterations, the
unbounded attack, the single-step / iterative pair. Each keeps everything the check does not vary, so a flaw of
the audited attacker (a tiny learning rate, early abort on noise) stays in its variants.
"""
from __future__ import annotations

from dataclasses import replace

from payoffs.audit.settings import AuditSettings
from payoffs.registry import ATTACKS
from payoffs.strategy import AttackerStrategy

ITERATION_PARAMS: dict[str, tuple[str, ...]] = {"cw": ("iterations", "search_steps"), "pgd": ("steps",)}
"""The parameters check 5 doubles, per attack; attacks not listed have no iterations to double."""
SEGMENT_PARAM: dict[str, str] = {"cw": "iterations", "pgd": "steps"}
"""The parameter that gives the steps of one optimization run (C&W restarts Adam at every search step)."""
UNBUDGETED = ("cw",)
"""Attacks with no distortion budget: they minimize distortion *among* successful examples, so against a
deterministic network they should succeed on about every attack."""


def with_eot(attacker: AttackerStrategy, k: int) -> AttackerStrategy:
    return replace(attacker, eot=k)


def with_params(attacker: AttackerStrategy, **params) -> AttackerStrategy:
    return AttackerStrategy(attacker.attack, {**dict(attacker.params), **params}, attacker.eot, attacker.success_test)


def doubled(attacker: AttackerStrategy) -> tuple[AttackerStrategy, dict[str, list]] | None:
    """The attacker with its iterations (and search steps) doubled, and what changed; None if it has none."""
    names = ITERATION_PARAMS.get(attacker.attack)
    if not names:
        return None
    changed = {n: [attacker.param(n), 2 * attacker.param(n)] for n in names}
    return with_params(attacker, **{n: after for n, (_, after) in changed.items()}), changed


def segment_length(attacker: AttackerStrategy) -> int | None:
    """Steps of one optimization run of the attacker (None for attacks without a loss path)."""
    name = SEGMENT_PARAM.get(attacker.attack)
    return None if name is None else int(attacker.param(name))


def unbounded(attacker: AttackerStrategy, settings: AuditSettings) -> tuple[AttackerStrategy, str]:
    """Check 3's attacker and how it was made: C&W with a constant so large that distortion no longer matters;
    any other attack becomes PGD with eps = 1 (the whole input box), with the attacker's EOT and success test."""
    if attacker.attack == "cw":
        return (with_params(attacker, initial_c=settings.unbounded_c),
                f"C&W with initial constant c = {settings.unbounded_c:g} (otherwise as audited)")
    pgd = AttackerStrategy("pgd", {"eps": 1.0, "steps": settings.unbounded_steps,
                                   "step_size": settings.unbounded_step_size, "random_start": False},
                           attacker.eot, attacker.success_test)
    return pgd, (f"PGD with eps = 1, {settings.unbounded_steps} steps of {settings.unbounded_step_size:g}, from the "
                 "clean image")


def order_eps(attacker: AttackerStrategy) -> float:
    """Check 6's Linf budget: the attacker's own eps where it has one, else FGSM's declared default."""
    eps = attacker.param("eps")
    return float(eps) if eps is not None else float(ATTACKS["fgsm"].params["eps"].default)


def single_and_iterative(attacker: AttackerStrategy, settings: AuditSettings) -> tuple[AttackerStrategy,
                                                                                          AttackerStrategy]:
    """FGSM and PGD at the same eps (PGD: ``order_steps`` steps of 2.5 eps / steps, from the clean image), both with
    the attacker's EOT and success test."""
    eps = order_eps(attacker)
    fgsm = AttackerStrategy("fgsm", {"eps": eps}, attacker.eot, attacker.success_test)
    step = min(1.0, 2.5 * eps / settings.order_steps)
    pgd = AttackerStrategy("pgd", {"eps": eps, "steps": settings.order_steps, "step_size": step,
                                   "random_start": False}, attacker.eot, attacker.success_test)
    return fgsm, pgd


def eot_ladder(eot_max: int) -> list[int]:
    """1, 2, 4, ... up to ``eot_max``."""
    ks, k = [], 1
    while k <= eot_max:
        ks.append(k)
        k *= 2
    return ks
