"""What an audit computes and how much: its declared settings (sizes, the unbounded and single-step attacks'
parameters, the seed). Torch-free. Thresholds that *decide* a check are not here: they live in
:mod:`gameplay.audit_rules`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from payoffs.errors import DefdropError
from payoffs.params import Param, ParamSet

CHECKS = (1, 2, 3, 4, 5, 6, 7)
"""The checks that can be chosen (check 8, the cost of each, is always recorded)."""

AUDIT_SETTINGS = ParamSet("audit", (
    Param("n_images", int, 40, "test images the undefended model classifies correctly (the attacks' images)", low=1),
    Param("targets", int, 1, "target classes per image: (label + j) mod K for j = 1..targets", low=1),
    Param("eval_samples", int, 20, "fresh defender samples M per adversarial example", low=1),
    Param("eot_max", int, 32, "the largest EOT k of the saturation curve (k doubles from 1)", low=2),
    Param("probe_images", int, 100, "test images of the forward-only checks (randomness, gradients)", low=1),
    Param("passes", int, 3, "repeated forward passes per image in check 1", low=2),
    Param("probe_calls", int, 16, "defense calls inside the attack whose randomness check 1 probes", low=1),
    Param("gradient_samples", int, 4, "sampled input gradients per image in check 7", low=1),
    Param("noise_scale", float, 1e-3, "half-width of the uniform input noise of check 7's stability test",
          low=0.0, high=1.0, low_open=True),
    Param("unbounded_c", float, 1e4, "check 3: C&W's initial constant (the distortion term no longer matters)",
          low=0.0, low_open=True),
    Param("unbounded_steps", int, 100, "check 3: steps of PGD with eps = 1 (attacks other than C&W)", low=1),
    Param("unbounded_step_size", float, 0.02, "check 3: PGD's step with eps = 1", low=0.0, high=1.0,
          low_open=True),
    Param("order_steps", int, 40, "check 6: PGD steps (step size 2.5 eps / steps)", low=1),
    Param("seed", int, 0, "seed of every draw of the audit", low=0),
    Param("batch_size", int, 900, "examples attacked at once (a speed knob)", low=1),
))


def _default(name: str) -> Any:
    return AUDIT_SETTINGS[name].default


@dataclass(frozen=True)
class AuditSettings:
    """The audit's settings, checked against :data:`AUDIT_SETTINGS` (see there for each one's meaning), plus
    ``checks``: which of :data:`CHECKS` to run."""

    n_images: int = _default("n_images")
    targets: int = _default("targets")
    eval_samples: int = _default("eval_samples")
    eot_max: int = _default("eot_max")
    probe_images: int = _default("probe_images")
    passes: int = _default("passes")
    probe_calls: int = _default("probe_calls")
    gradient_samples: int = _default("gradient_samples")
    noise_scale: float = _default("noise_scale")
    unbounded_c: float = _default("unbounded_c")
    unbounded_steps: int = _default("unbounded_steps")
    unbounded_step_size: float = _default("unbounded_step_size")
    order_steps: int = _default("order_steps")
    seed: int = _default("seed")
    batch_size: int = _default("batch_size")
    checks: tuple[int, ...] = CHECKS

    def __post_init__(self) -> None:
        values = {k: v for k, v in asdict(self).items() if k != "checks"}
        for name, value in AUDIT_SETTINGS.resolve(values).items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "checks", check_numbers(self.checks))

    @classmethod
    def from_text(cls, given: dict[str, Any], checks: str | None = None) -> "AuditSettings":
        """From command-line strings (``{"n_images": "40"}``) and a comma list of checks (``"3,7"``)."""
        values = AUDIT_SETTINGS.resolve(given, text=True)
        return cls(**values, checks=parse_checks(checks) if checks else CHECKS)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "checks": list(self.checks)}


def check_numbers(checks) -> tuple[int, ...]:
    """The chosen checks, sorted, each one of :data:`CHECKS`."""
    try:
        out = tuple(sorted({int(c) for c in checks}))
    except (TypeError, ValueError):
        raise DefdropError(f"audit checks {checks!r} must be numbers among {', '.join(map(str, CHECKS))}") from None
    bad = [c for c in out if c not in CHECKS]
    if bad or not out:
        raise DefdropError(f"audit checks {', '.join(map(str, bad)) or '(none)'}: choose among "
                           f"{', '.join(map(str, CHECKS))} (check 8, the cost, is always recorded)")
    return out


def parse_checks(text: str) -> tuple[int, ...]:
    """``"3,7"`` -> ``(3, 7)``."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise DefdropError(f"--checks {text!r} must be a comma list of check numbers, e.g. 3,7")
    return check_numbers(parts)
