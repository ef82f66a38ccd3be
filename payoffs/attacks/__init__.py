"""Targeted white-box attacks on (possibly randomized) models: FGSM, JSMA, C&W-L2, PGD, all with EOT.

``make_attack(name, **params)`` builds one by its registered name (:data:`payoffs.registry.ATTACKS`, which
declares every attack's parameters); see :mod:`payoffs.attacks.base` for the stochastic semantics (``eot``,
``success_test``) every attack shares.
"""
from __future__ import annotations

from payoffs.attacks.base import SUCCESS_TESTS, Attack, AttackResult, SuccessTest
from payoffs.attacks.cw import CarliniWagnerL2
from payoffs.attacks.fgsm import FGSM
from payoffs.attacks.jsma import JSMA
from payoffs.attacks.pgd import PGD
from payoffs.registry import ATTACKS as _REGISTRY


def make_attack(name: str, **params) -> Attack:
    """The attack registered as ``name`` (``fgsm``, ``jsma``, ``cw``, ``pgd``, or a plug-in) built with ``params``
    (its declared parameters plus ``eot``, ``success_test``, ``seed``, ``batch_size``)."""
    return _REGISTRY[name].load()(**params)


ATTACKS = ("fgsm", "jsma", "cw", "pgd")
"""The built-in attacks (the registry may hold more: :data:`payoffs.registry.ATTACKS`)."""


__all__ = ["ATTACKS", "SUCCESS_TESTS", "Attack", "AttackResult", "CarliniWagnerL2", "FGSM", "JSMA", "PGD",
           "SuccessTest", "make_attack"]
