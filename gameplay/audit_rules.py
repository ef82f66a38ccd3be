"""Pass, fail or inconclusive for every audit check, decided by intervals (at :data:`payoffs.stats.LEVEL`, the
level of every interval defdrop reports); every threshold of the audit is here, once. Torch-free: reads
:mod:`payoffs.audit.evidence`.

Three shapes of rule, all on an interval [low, high]:

* **reaches** a level (:func:`reaches`): pass when the whole interval lies above it, fail when it lies below,
  inconclusive otherwise (e.g. "an unbounded attack reaches about 100%": above :data:`NEAR_TOTAL`);
* **stays below** a level (:func:`stays_below`): pass when the interval lies below it, fail when above (e.g.
  "doubling the iterations raises ASR by less than :data:`ITERATION_MARGIN`");
* **not worse** by more than a margin (:func:`not_worse`): a paired difference ``a - b`` passes when its interval
  lies above ``-margin``, fails when it lies below (e.g. "PGD >= FGSM", within :data:`ORDER_MARGIN`).

A difference of two runs that are the same computation (``Estimate.identical``) is exactly 0. A check with several
parts fails when any part fails, passes when all pass, and is inconclusive otherwise; a check that does not apply
(check 5 for an attack without iterations) is ``n/a``, one that was not chosen ``not run``.

With few images, "about 100%" cannot be shown: at 95% the exact interval of G successes out of G images reaches
above 0.9 only from G = 36 images on. Such checks are then inconclusive, which is what the data earn.
"""
from __future__ import annotations

from dataclasses import dataclass

from payoffs.audit.evidence import AuditEvidence, DefenderAudit, EotEvidence, Estimate

PASS, FAIL, INCONCLUSIVE, NOT_APPLICABLE, NOT_RUN = "pass", "fail", "inconclusive", "n/a", "not run"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, NOT_APPLICABLE, NOT_RUN)

NEAR_TOTAL = 0.9
""""About 100%": an interval that lies above 0.9 (checks 2 and 3)."""
RANDOM_MIN_SHARE = 0.5
"""A randomized defender changes the logits of most inputs from one forward pass to the next, and a redraw inside
the attack changes most rows (check 1); a deterministic one changes fewer than half (in fact none)."""
FIXED_MASK_MARGIN = 0.05
"""Against one frozen draw the attack may fall short of its undefended success by less than 5 points (check 2)."""
EOT_MARGIN = 0.05
"""Doubling EOT's k has saturated when the paired rise in ASR lies below 5 points (check 4)."""
ITERATION_MARGIN = 0.05
"""Doubling the iterations must raise ASR by less than 5 points (check 5)."""
LOSS_FLAT_SHARE = 0.05
"""The loss path is flat at its end when its second-to-last tenth made less than 5% of its whole decrease (a
straight fall makes 1/9 = 11%; check 5, Pintor et al.'s incomplete-optimization indicator)."""
ORDER_MARGIN = 0.05
"""PGD may trail FGSM, and white-box may trail transfer, by less than 5 points (check 6)."""
GRADIENT_FAILURE_SHARE = 0.1
"""Fewer than 10% of sampled input gradients may be all zero, fewer than 10% of defender samples may flip their
prediction under tiny input noise (check 7). A NaN or infinite gradient fails at once."""

NAMES = {1: "randomness real and kept", 2: "fixed-randomness sanity", 3: "unbounded attack reaches 100%",
         4: "EOT saturation", 5: "enough iterations", 6: "iterative beats single-step, white-box beats transfer",
         7: "gradients informative", 8: "cost"}


# ---------------------------------------------------------------------------------------------- the rule shapes
def reaches(est: Estimate | None, level: float) -> str:
    if est is None or not est.known:
        return INCONCLUSIVE
    if est.low > level:
        return PASS
    if est.high < level:
        return FAIL
    return INCONCLUSIVE


def stays_below(est: Estimate | None, level: float) -> str:
    if est is None or not est.known:
        return INCONCLUSIVE
    if est.identical or est.high < level:
        return PASS
    if est.low > level:
        return FAIL
    return INCONCLUSIVE


def not_worse(diff: Estimate | None, margin: float) -> str:
    if diff is None or not diff.known:
        return INCONCLUSIVE
    if diff.identical or diff.low > -margin:
        return PASS
    if diff.high < -margin:
        return FAIL
    return INCONCLUSIVE


def combine(verdicts) -> str:
    """All parts pass: pass; any fails: fail; otherwise inconclusive (``n/a`` parts are left out)."""
    parts = [v for v in verdicts if v not in (NOT_APPLICABLE, NOT_RUN)]
    if not parts:
        return NOT_APPLICABLE
    if any(v == FAIL for v in parts):
        return FAIL
    if all(v == PASS for v in parts):
        return PASS
    return INCONCLUSIVE


def eot_step_saturated(step: Estimate) -> bool:
    """Doubling k gained less than :data:`EOT_MARGIN` (the whole interval of the paired rise below it), or the two
    runs were the same computation. The EOT check stops at the first such step."""
    return stays_below(step, EOT_MARGIN) == PASS


def eot_knee(eot: EotEvidence) -> int | None:
    """The smallest k whose doubling saturated (EOT beyond k gains less than :data:`EOT_MARGIN`); None if none."""
    for before, point in zip(eot.points, eot.points[1:]):
        if point.step is not None and eot_step_saturated(point.step):
            return before.k
    return None


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class CheckVerdict:
    """One check's verdict and its parts' (``parts``: (what, verdict) pairs, in the order analysis words them)."""

    number: int
    name: str
    verdict: str
    parts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DefenderVerdict:
    """All checks of one defender; ``knee``: EOT's saturation point (None if not found or check 4 not run);
    ``attacker_below_knee``: the audited attacker's k is below it."""

    defender: str
    checks: tuple[CheckVerdict, ...]
    knee: int | None
    attacker_eot: int
    overall: str

    @property
    def attacker_below_knee(self) -> bool | None:
        return None if self.knee is None else self.attacker_eot < self.knee

    def check(self, number: int) -> CheckVerdict:
        return next(c for c in self.checks if c.number == number)

    @property
    def failed(self) -> tuple[int, ...]:
        return tuple(c.number for c in self.checks if c.verdict == FAIL)

    @property
    def inconclusive(self) -> tuple[int, ...]:
        return tuple(c.number for c in self.checks if c.verdict == INCONCLUSIVE)


@dataclass(frozen=True)
class AuditVerdict:
    defenders: tuple[DefenderVerdict, ...]

    def defender(self, label: str) -> DefenderVerdict:
        return next(d for d in self.defenders if d.defender == label)


# ---------------------------------------------------------------------------------------------- per check
def _parts(number: int, parts: list[tuple[str, str]]) -> CheckVerdict:
    return CheckVerdict(number, NAMES[number], combine(v for _, v in parts), tuple(parts))


def decide_randomness(a: DefenderAudit) -> CheckVerdict:
    e = a.randomness
    if e.declared_random:
        passes, redraw = reaches(e.logits_differ, RANDOM_MIN_SHARE), reaches(e.redraw_changes, RANDOM_MIN_SHARE)
    else:  # declared deterministic: it must really draw nothing (samplers take one sample for all)
        passes, redraw = stays_below(e.logits_differ, RANDOM_MIN_SHARE), stays_below(e.redraw_changes,
                                                                                     RANDOM_MIN_SHARE)
    return _parts(1, [("repeated passes", passes), ("inside the attack", redraw),
                      ("no mode switch", FAIL if e.mode_switched else PASS)])


def decide_fixed_mask(a: DefenderAudit) -> CheckVerdict:
    e = a.fixed_mask
    parts = [("frozen vs undefended", not_worse(e.difference, FIXED_MASK_MARGIN))]
    parts.append(("about 100%", reaches(e.frozen_asr, NEAR_TOTAL) if e.unbudgeted else NOT_APPLICABLE))
    return _parts(2, parts)


def decide_unbounded(a: DefenderAudit) -> CheckVerdict:
    return _parts(3, [("majority success", reaches(a.unbounded.majority, NEAR_TOTAL))])


def decide_eot(a: DefenderAudit) -> CheckVerdict:
    e = a.eot
    if eot_knee(e) is not None:
        return _parts(4, [("saturates", PASS)])
    last = e.points[-1].step if len(e.points) > 1 else None
    return _parts(4, [("saturates", FAIL if last is not None and last.known and last.low > EOT_MARGIN
                       else INCONCLUSIVE)])


def decide_iterations(a: DefenderAudit) -> CheckVerdict:
    e = a.iterations
    if not e.applicable:
        return CheckVerdict(5, NAMES[5], NOT_APPLICABLE, (("doubling", NOT_APPLICABLE),
                                                          ("loss flat", NOT_APPLICABLE)))
    return _parts(5, [("doubling", stays_below(e.difference, ITERATION_MARGIN)),
                      ("loss flat", stays_below(e.flatness, LOSS_FLAT_SHARE))])


def decide_ordering(a: DefenderAudit) -> CheckVerdict:
    e = a.ordering
    return _parts(6, [("PGD >= FGSM", not_worse(e.iterative_minus_single, ORDER_MARGIN)),
                      ("white-box >= transfer", not_worse(e.whitebox_minus_transfer, ORDER_MARGIN))])


def decide_gradients(a: DefenderAudit) -> CheckVerdict:
    e = a.gradients
    return _parts(7, [("no zero gradients", stays_below(e.zero, GRADIENT_FAILURE_SHARE)),
                      ("no NaN or inf", FAIL if e.nonfinite_count > 0 else PASS),
                      ("stable under tiny noise", stays_below(e.flips, GRADIENT_FAILURE_SHARE))])


DECIDE = {1: ("randomness", decide_randomness), 2: ("fixed_mask", decide_fixed_mask),
          3: ("unbounded", decide_unbounded), 4: ("eot", decide_eot), 5: ("iterations", decide_iterations),
          6: ("ordering", decide_ordering), 7: ("gradients", decide_gradients)}


def decide_defender(a: DefenderAudit, attacker_eot: int) -> DefenderVerdict:
    """Every check's verdict (``not run`` for the ones not chosen); check 8 (cost) is recorded, not judged."""
    checks = []
    for number, (name, decide) in DECIDE.items():
        if getattr(a, name) is None:
            checks.append(CheckVerdict(number, NAMES[number], NOT_RUN))
        else:
            checks.append(decide(a))
    knee = eot_knee(a.eot) if a.eot is not None else None
    return DefenderVerdict(a.defender, tuple(checks), knee, attacker_eot, combine(c.verdict for c in checks))


def decide(audit: AuditEvidence) -> AuditVerdict:
    eot = int(audit.attacker.get("eot", 1))
    return AuditVerdict(tuple(decide_defender(d, eot) for d in audit.defenders))
