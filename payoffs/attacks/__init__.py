"""Targeted white-box attacks on (possibly randomized) models: FGSM, JSMA, C&W-L2, PGD, all with EOT.

``make_attack(name, **params)`` builds one by its strategy name; see :mod:`payoffs.attacks.base` for the
stochastic semantics (``eot``, ``success_test``) every attack shares.
"""
from __future__ import annotations

from payoffs.attacks.base import SUCCESS_TESTS, Attack, AttackResult
from payoffs.attacks.cw import CarliniWagnerL2
from payoffs.attacks.fgsm import FGSM
from payoffs.attacks.jsma import JSMA
from payoffs.attacks.pgd import PGD
from payoffs.errors import DefdropError

_CLASSES: dict[str, type[Attack]] = {"fgsm": FGSM, "jsma": JSMA, "cw": CarliniWagnerL2, "pgd": PGD}
ATTACKS = tuple(_CLASSES)


def make_attack(name: str, **params) -> Attack:
    """The attack called ``name`` (``fgsm``, ``jsma``, ``cw``, ``pgd``) built with ``params``."""
    if name not in _CLASSES:
        raise DefdropError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    try:
        return _CLASSES[name](**params)
    except TypeError:
        import inspect

        accepted = [p for p in inspect.signature(_CLASSES[name]).parameters]
        bad = sorted(set(params) - set(accepted))
        raise DefdropError(f"attack {name} has no parameter {', '.join(map(repr, bad)) or '?'} "
                           f"(it takes {', '.join(accepted)})") from None


__all__ = ["ATTACKS", "SUCCESS_TESTS", "Attack", "AttackResult", "CarliniWagnerL2", "FGSM", "JSMA", "PGD",
           "make_attack"]
