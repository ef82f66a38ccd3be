"""What each audit check measured, as small frozen records (torch-free; :mod:`gameplay.audit_rules` decides on
them, :mod:`analysis.audit_page` writes them out).

Every number that a decision reads is an :class:`Estimate` with its interval at :data:`payoffs.stats.LEVEL`; the
unit of resampling is the test image (the attacks on one image are one cluster), as in the payoff table.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Estimate:
    """A mean with its interval: a rate, a paired difference or a share.

    ``identical`` (differences only): the two runs are one computation (EOT's k over a defender that draws
    nothing, a frozen draw of the ``none`` defender): the difference is exactly 0, whatever the sample size.
    """

    mean: float
    low: float
    high: float
    std_error: float = math.nan
    n_units: int = 0
    n_clusters: int = 0
    method: str = ""
    identical: bool = False

    @property
    def known(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


@dataclass(frozen=True)
class Cost:
    """Work in examples through the network (see :mod:`payoffs.sampling`) and wall-clock seconds."""

    forwards: int = 0
    backwards: int = 0
    trunk_forwards: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class LossCurve:
    """The attack's own loss per step: ``mean`` over the examples still active at that step (``active`` of them;
    C&W drops examples that stopped improving). ``segment``: steps per optimization run (C&W restarts at every
    binary-search step), ``None`` for a single run."""

    steps: tuple[int, ...]
    mean: tuple[float, ...]
    active: tuple[int, ...]
    segment: int | None = None


@dataclass(frozen=True)
class Run:
    """One attack run: the attacker (``attacker`` = strategy id, ``strategy`` = its full parameters), what it
    attacked (``against``: ``defended``, ``frozen`` = one mask of the defender, ``undefended``, or ``transfer``:
    examples crafted on the undefended model, judged on the defended one), success under M fresh defender samples
    (``asr``: mean share of samples saying the target; ``majority``: share of attacks whose target wins in more
    than half of them), the attacker's own belief, mean L2, cost and loss curve."""

    name: str
    attacker: str
    strategy: dict
    against: str
    asr: Estimate
    majority: Estimate
    believed: float
    l2_mean: float
    cost: Cost
    loss: LossCurve | None = None


@dataclass(frozen=True)
class RandomnessEvidence:
    """Check 1. ``declared_random``: the defender says it draws randomness (``payoffs.sampling.is_random``).
    Plain repeated forward passes (``passes`` per image, the user's own call path): the share of images whose
    logits / top-1 prediction differ between passes. Inside the attack: the first ``probed_calls`` calls of the
    defense were redrawn on the same activations; ``redraw_changes`` is the share of rows a redraw changed;
    ``training_*``: modules in training mode before, during (the most seen at any probed call) and after."""

    declared_random: bool
    passes: int
    images: int
    logits_differ: Estimate
    predictions_differ: Estimate
    run: str
    probed_calls: int
    redraw_changes: Estimate
    training_before: int
    training_during: int
    training_after: int

    @property
    def mode_switched(self) -> bool:
        return not (self.training_before == self.training_during == self.training_after)


@dataclass(frozen=True)
class FixedMaskEvidence:
    """Check 2: the attack against one frozen draw of the defender (a deterministic network) and against the
    undefended model; ``difference`` = frozen - undefended, paired per attack. ``unbudgeted``: the attack has no
    distortion budget (C&W), so it should succeed on about every attack of a deterministic network."""

    frozen: str
    undefended: str
    frozen_asr: Estimate
    undefended_asr: Estimate
    difference: Estimate
    unbudgeted: bool


@dataclass(frozen=True)
class UnboundedEvidence:
    """Check 3: the attack with its budget removed (``how``). Judged by ``majority`` success under fresh samples:
    the attacker controls the input, not the defender's draws, so the most it can do is make the target win in
    most of them; ``asr`` (the mean share) is shown beside it."""

    run: str
    how: str
    majority: Estimate
    asr: Estimate


@dataclass(frozen=True)
class EotPoint:
    """ASR with EOT over ``k`` samples; ``step`` = ASR(k) - ASR(k / 2) and ``gain`` = ASR(k) - ASR(1), paired per
    attack (None at k = 1)."""

    k: int
    run: str
    asr: Estimate
    step: Estimate | None = None
    gain: Estimate | None = None


@dataclass(frozen=True)
class EotEvidence:
    """Check 4: the EOT-saturation curve, k = 1, 2, 4, ... until a doubling stopped paying (``stopped`` =
    ``saturated``) or ``eot_max`` was reached (``stopped`` = ``eot_max``). ``attacker_eot``: the audited
    attacker's own k."""

    points: tuple[EotPoint, ...]
    attacker_eot: int
    eot_max: int
    deterministic: bool
    stopped: str

    def point(self, k: int) -> EotPoint | None:
        return next((p for p in self.points if p.k == k), None)


@dataclass(frozen=True)
class IterationsEvidence:
    """Check 5: the attack with its iterations (and C&W's search steps) doubled (``changed``: parameter ->
    [before, after]); ``difference`` = ASR(doubled) - ASR(as given), paired. ``flatness``: Pintor et al.'s
    incomplete-optimization indicator on the given run's own loss path, per example and per optimization run
    ``(W_{-2} - W_{-1}) / (W_0 - W_{-1})`` with ``W`` the mean loss over the first, the second-to-last and the last
    ``window`` steps (0 = flat at the end, 1/9 = still falling in a straight line with 10 windows). ``applicable``
    is False for attacks without iterations (FGSM, JSMA, plug-ins)."""

    applicable: bool
    base: str = ""
    doubled: str = ""
    changed: dict = field(default_factory=dict)
    difference: Estimate | None = None
    flatness: Estimate | None = None
    windows: int = 10


@dataclass(frozen=True)
class OrderingEvidence:
    """Check 6: PGD against FGSM at the same Linf ``eps`` (both with the attacker's EOT and success test), and
    the attack white-box against the same attack's examples crafted on the undefended model (``transfer``), each
    difference paired per attack."""

    eps: float
    pgd: str
    fgsm: str
    pgd_asr: Estimate
    fgsm_asr: Estimate
    iterative_minus_single: Estimate
    whitebox: str
    transfer: str
    whitebox_asr: Estimate
    transfer_asr: Estimate
    whitebox_minus_transfer: Estimate


@dataclass(frozen=True)
class GradientEvidence:
    """Check 7: ``samples`` sampled input gradients of the attack's ``objective`` per image (the probe images
    towards (label + 1) mod K): shares of (image, sample) gradients that are all zero / contain NaN or inf, and the
    share of defender samples whose prediction flips when uniform noise of half-width ``noise_scale`` is added to
    the image (the same defender draws at both inputs)."""

    objective: str
    images: int
    samples: int
    zero: Estimate
    nonfinite: Estimate
    nonfinite_count: int
    noise_scale: float
    flips: Estimate


@dataclass(frozen=True)
class DefenderAudit:
    """Everything measured for one defender strategy; a check not run is ``None``. ``costs``: (check, cost) in the
    order run (a run several checks share is paid by the first)."""

    defender: str
    defense: str
    params: dict
    declared_random: bool
    randomness: RandomnessEvidence | None = None
    fixed_mask: FixedMaskEvidence | None = None
    unbounded: UnboundedEvidence | None = None
    eot: EotEvidence | None = None
    iterations: IterationsEvidence | None = None
    ordering: OrderingEvidence | None = None
    gradients: GradientEvidence | None = None
    costs: tuple[tuple[int, Cost], ...] = ()
    runs: tuple[Run, ...] = ()

    def run(self, name: str) -> Run:
        return next(r for r in self.runs if r.name == name)

    @property
    def total_cost(self) -> Cost:
        c = [cost for _, cost in self.costs]
        return Cost(sum(x.forwards for x in c), sum(x.backwards for x in c), sum(x.trunk_forwards for x in c),
                    sum(x.seconds for x in c))


@dataclass(frozen=True)
class ModelInfo:
    """The audited model: content hash, label, dataset, the layer the defense follows, and whether the layers
    before it run once for all defender samples (``split``; otherwise the reason they cannot)."""

    identity: str
    label: str
    dataset: str | None
    slot: str
    split: str


@dataclass(frozen=True)
class AuditEvidence:
    """One audit: a model, one attacker strategy (``attacker``: its ``to_dict()`` plus ``id``), the settings,
    the attacked images (``images`` x ``targets`` = ``attacks``), and one :class:`DefenderAudit` per defender."""

    model: ModelInfo
    attacker: dict
    settings: dict
    data: str
    images: int
    attacks: int
    defenders: tuple[DefenderAudit, ...]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
