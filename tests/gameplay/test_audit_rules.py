"""The audit's decisions on hand-made evidence: the three rule shapes, the EOT knee, every check, the backing of a
decision, and the summary's JSON form."""
from __future__ import annotations

import json
import math

import pytest

from gameplay import audit_backing as ab
from gameplay.audit_rules import (
    EOT_MARGIN,
    FAIL,
    INCONCLUSIVE,
    NEAR_TOTAL,
    NOT_APPLICABLE,
    NOT_RUN,
    PASS,
    combine,
    decide,
    decide_defender,
    eot_knee,
    not_worse,
    reaches,
    stays_below,
)
from payoffs.audit.evidence import (
    AuditEvidence,
    DefenderAudit,
    EotEvidence,
    EotPoint,
    Estimate,
    FixedMaskEvidence,
    GradientEvidence,
    IterationsEvidence,
    ModelInfo,
    RandomnessEvidence,
    UnboundedEvidence,
)
from payoffs.errors import DefdropError


def est(mean: float, low: float, high: float, identical: bool = False) -> Estimate:
    return Estimate(mean, low, high, identical=identical)


# ---------------------------------------------------------------------------------------------- rule shapes
@pytest.mark.parametrize("low,high,expected", [(0.95, 1.0, PASS), (0.5, 0.85, FAIL), (0.85, 1.0, INCONCLUSIVE),
                                               (math.nan, math.nan, INCONCLUSIVE)])
def test_reaches(low, high, expected) -> None:
    assert reaches(est(0.9, low, high), NEAR_TOTAL) == expected


@pytest.mark.parametrize("low,high,expected", [(-0.01, 0.04, PASS), (0.06, 0.2, FAIL), (0.0, 0.08, INCONCLUSIVE)])
def test_stays_below(low, high, expected) -> None:
    assert stays_below(est(0.03, low, high), 0.05) == expected


@pytest.mark.parametrize("low,high,expected", [(-0.04, 0.1, PASS), (-0.3, -0.06, FAIL), (-0.1, 0.0, INCONCLUSIVE)])
def test_not_worse(low, high, expected) -> None:
    assert not_worse(est(0.0, low, high), 0.05) == expected


def test_identical_runs_differ_by_exactly_zero() -> None:
    same = est(0.0, 0.0, 0.0, identical=True)
    assert stays_below(same, 0.05) == PASS and not_worse(same, 0.05) == PASS


def test_combine() -> None:
    assert combine([PASS, PASS, NOT_APPLICABLE]) == PASS
    assert combine([PASS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([INCONCLUSIVE, FAIL, PASS]) == FAIL
    assert combine([NOT_APPLICABLE]) == NOT_APPLICABLE


# ---------------------------------------------------------------------------------------------- EOT
def curve(*steps: tuple[float, float]) -> EotEvidence:
    points = [EotPoint(1, "k1", est(0.2, 0.1, 0.3))]
    for i, (low, high) in enumerate(steps):
        points.append(EotPoint(2 ** (i + 1), f"k{2 ** (i + 1)}", est(0.3, 0.2, 0.4), est((low + high) / 2, low, high)))
    return EotEvidence(tuple(points), 1, 2 ** len(steps), False, "saturated")


def test_eot_knee_is_the_k_before_the_first_saturated_doubling() -> None:
    assert eot_knee(curve((0.1, 0.2), (0.02, 0.09), (-0.02, 0.03))) == 4
    assert eot_knee(curve((-0.01, 0.01))) == 1
    assert eot_knee(curve((0.1, 0.2), (0.06, 0.1))) is None
    # A step that is not significant but could still be 5 points is not saturation.
    assert eot_knee(curve((-0.02, EOT_MARGIN + 0.01))) is None


def audit_of(eot: EotEvidence | None = None, **fields) -> DefenderAudit:
    return DefenderAudit("dropout[r'=0.5]", "dropout", {"rate": 0.5}, True, eot=eot, **fields)


def test_eot_verdicts() -> None:
    assert decide_defender(audit_of(curve((0.1, 0.2), (-0.01, 0.02))), 1).check(4).verdict == PASS
    still = decide_defender(audit_of(curve((0.1, 0.2), (0.06, 0.12))), 1)
    assert still.check(4).verdict == FAIL and still.knee is None  # rising by more than the margin at eot_max
    unsure = decide_defender(audit_of(curve((0.1, 0.2), (0.0, 0.12))), 1)
    assert unsure.check(4).verdict == INCONCLUSIVE
    below = decide_defender(audit_of(curve((0.1, 0.2), (-0.01, 0.02))), 1)
    assert below.knee == 2 and below.attacker_below_knee
    assert not decide_defender(audit_of(curve((0.1, 0.2), (-0.01, 0.02))), 4).attacker_below_knee


# ---------------------------------------------------------------------------------------------- the other checks
def randomness(declared: bool, differ: float, redraw: float, before=0, during=0, after=0) -> RandomnessEvidence:
    return RandomnessEvidence(declared, 3, 100, est(differ, differ - 0.03, min(1.0, differ + 0.03)),
                              est(differ, 0, 1), "as given", 16, est(redraw, redraw - 0.02, min(1.0, redraw + 0.02)),
                              before, during, after)


def test_randomness_verdicts() -> None:
    v = decide_defender(audit_of(randomness=randomness(True, 1.0, 0.99)), 1).check(1)
    assert v.verdict == PASS
    v = decide_defender(audit_of(randomness=randomness(True, 0.0, 0.0)), 1).check(1)
    assert dict(v.parts) == {"repeated passes": FAIL, "inside the attack": FAIL, "no mode switch": PASS}
    v = decide_defender(audit_of(randomness=randomness(True, 1.0, 0.99, 0, 3, 3)), 1).check(1)
    assert v.verdict == FAIL and dict(v.parts)["no mode switch"] == FAIL
    # Declared deterministic and really so: pass; declared deterministic but random: fail.
    assert decide_defender(audit_of(randomness=randomness(False, 0.0, 0.0)), 1).check(1).verdict == PASS
    assert decide_defender(audit_of(randomness=randomness(False, 1.0, 0.99)), 1).check(1).verdict == FAIL


def test_fixed_mask_needs_about_100_percent_only_without_a_budget() -> None:
    short = FixedMaskEvidence("f", "u", est(0.3, 0.2, 0.4), est(0.3, 0.2, 0.4), est(0.0, -0.03, 0.03), True)
    assert decide_defender(audit_of(fixed_mask=short), 1).check(2).verdict == FAIL
    budgeted = FixedMaskEvidence("f", "u", est(0.3, 0.2, 0.4), est(0.3, 0.2, 0.4), est(0.0, -0.03, 0.03), False)
    v = decide_defender(audit_of(fixed_mask=budgeted), 1).check(2)
    assert v.verdict == PASS and dict(v.parts)["about 100%"] == NOT_APPLICABLE
    worse = FixedMaskEvidence("f", "u", est(0.6, 0.5, 0.7), est(0.95, 0.92, 1.0), est(-0.35, -0.45, -0.25), False)
    assert decide_defender(audit_of(fixed_mask=worse), 1).check(2).verdict == FAIL


def test_iterations_gradients_unbounded() -> None:
    it = IterationsEvidence(True, "a", "b", {"steps": [40, 80]}, est(0.1, 0.07, 0.13), est(0.01, 0.0, 0.02))
    v = decide_defender(audit_of(iterations=it), 1).check(5)
    assert v.verdict == FAIL and dict(v.parts) == {"doubling": FAIL, "loss flat": PASS}
    assert decide_defender(audit_of(iterations=IterationsEvidence(False)), 1).check(5).verdict == NOT_APPLICABLE
    g = GradientEvidence("ce", 100, 4, est(0.0, 0.0, 0.036), est(0.01, 0.0, 0.05), 3, 1e-3, est(0.0, 0.0, 0.036))
    v = decide_defender(audit_of(gradients=g), 1).check(7)
    assert v.verdict == FAIL and dict(v.parts)["no NaN or inf"] == FAIL
    u = UnboundedEvidence("u", "PGD eps = 1", est(0.5, 0.3, 0.7), est(0.5, 0.3, 0.7))
    assert decide_defender(audit_of(unbounded=u), 1).check(3).verdict == FAIL


def test_checks_not_run_and_overall() -> None:
    d = decide_defender(audit_of(curve((-0.01, 0.02))), 1)
    assert d.check(1).verdict == NOT_RUN and d.overall == PASS and d.knee == 1


# ---------------------------------------------------------------------------------------------- backing
def evidence(knee_steps=((0.1, 0.2), (-0.01, 0.02)), model: str = "abc", fail_unbounded: bool = False,
             eot_run: bool = True) -> AuditEvidence:
    u = UnboundedEvidence("u", "how", est(0.5, 0.3, 0.7) if fail_unbounded else est(1.0, 0.95, 1.0), est(1, 1, 1))
    a = audit_of(curve(*knee_steps) if eot_run else None, unbounded=u)
    return AuditEvidence(ModelInfo(model, "r=0.3", "mnist-5k", "dropout", "shared trunk"),
                         {"attack": "cw", "id": "cw[k=0]", "eot": 1, "success_test": "single"}, {}, "mnist-5k", 10,
                         10, (a,))


def summary(**kw) -> ab.AuditSummary:
    ev = evidence(**kw)
    return ab.audit_summary(ev, decide(ev))


@pytest.mark.parametrize("kw,defender,model,attackers,status", [
    ({}, "dropout[r'=0.5]", "abc", [("cw", 1), ("cw", 4)], ab.BACKED),
    ({}, "r=0.3/dropout[r'=0.5]", "abc", [("cw", 2)], ab.BACKED),
    ({}, "dropout[r'=0.5]", "abc", [("cw", 1)], ab.BELOW_KNEE),
    ({}, "dropout[r'=0.5]", "abc", [("fgsm", 8)], ab.OTHER_ATTACK),
    ({}, "dropout[r'=0.3]", "abc", [("cw", 8)], ab.NOT_AUDITED),
    ({}, "dropout[r'=0.5]", "xyz", [("cw", 8)], ab.OTHER_MODEL),
    ({"knee_steps": ((0.1, 0.2), (0.06, 0.1))}, "dropout[r'=0.5]", "abc", [("cw", 8)], ab.NO_KNEE),
    ({"fail_unbounded": True}, "dropout[r'=0.5]", "abc", [("cw", 8)], ab.CHECKS_FAILED),
    ({"eot_run": False}, "dropout[r'=0.5]", "abc", [("cw", 8)], ab.EOT_NOT_RUN),
])
def test_backing_status(kw, defender, model, attackers, status) -> None:
    b = ab.backing(summary(**kw), defender, model, attackers)
    assert b.status == status, b
    if status == ab.BELOW_KNEE:
        assert (b.knee, b.table_eot) == (2, 1)


def test_summary_json_round_trip_and_bad_files(tmp_path) -> None:
    s = summary()
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"summary": s.to_dict()}))
    assert ab.read_audit_json(path) == s
    for blob in ({"nothing": 1}, {"summary": {"version": 99}}, {"summary": {**s.to_dict(), "attacker_eot": "x"}},
                 {"summary": {**s.to_dict(), "defenders": [{"defender": "d"}]}}):
        path.write_text(json.dumps(blob))
        with pytest.raises(DefdropError, match="audit"):
            ab.read_audit_json(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(DefdropError, match="audit"):
        ab.read_audit_json(path)


def test_the_decision_side_is_torch_free() -> None:
    import subprocess
    import sys

    code = ("import sys, gameplay.audit_rules, gameplay.audit_backing, payoffs.audit.variants; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
