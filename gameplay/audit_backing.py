"""Does an audit back a decision? The verdict printed beside a recommended defender (``defdrop solve --audit``, the
reproduce report): "EOT saturates at k = 8; the table's attackers reach k = 8", or the warning that they do not.

An audit is summarized (:class:`AuditSummary`: the model's identity, the audited attack and its k, and per
defender its verdicts and EOT knee); the summary is the ``summary`` member of the audit's JSON (written by
``analysis.audit_page``, read back by :func:`read_audit_json`). :func:`backing` compares one defender of a payoff
table with it. Torch-free.

Status, in order of precedence:

- ``not audited``: the audit has no such defender (or is of another model: ``other model``);
- ``checks failed``: a check other than EOT's failed for this defender: the table's numbers for it rest on a flawed
  attack;
- ``EOT not audited``: check 4 was not run; ``no knee``: EOT did not saturate within the audit's range of k;
- ``other attack``: the table has no attacker of the audited attack, so the knee says nothing about it;
- ``below knee``: the table's strongest EOT for that attack stops below the knee: its ASR is an underestimate;
- ``backed``: the knee is found and the table's attackers reach it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from gameplay.audit_rules import FAIL, INCONCLUSIVE, NOT_RUN, VERDICTS, AuditVerdict
from payoffs.audit.evidence import AuditEvidence
from payoffs.errors import DefdropError, untrusted

SUMMARY_VERSION = 1
BACKED, BELOW_KNEE, NO_KNEE, EOT_NOT_RUN, CHECKS_FAILED, NOT_AUDITED, OTHER_MODEL, OTHER_ATTACK = (
    "backed", "below knee", "no knee", "EOT not audited", "checks failed", "not audited", "other model",
    "other attack")


@dataclass(frozen=True)
class DefenderSummary:
    """One audited defender: ``verdicts`` = check number -> verdict, ``knee`` (None: not found), the largest k the
    curve tried, and the overall verdict."""

    defender: str
    overall: str
    verdicts: tuple[tuple[int, str], ...]
    knee: int | None
    eot_tried: int

    @property
    def failed(self) -> tuple[int, ...]:
        return tuple(n for n, v in self.verdicts if v == FAIL)

    @property
    def inconclusive(self) -> tuple[int, ...]:
        return tuple(n for n, v in self.verdicts if v == INCONCLUSIVE)

    @property
    def eot_run(self) -> bool:
        return dict(self.verdicts).get(4, NOT_RUN) != NOT_RUN


@dataclass(frozen=True)
class AuditSummary:
    """What a decision needs to know of an audit."""

    model: str
    model_label: str
    attack: str
    attacker: str
    attacker_eot: int
    defenders: tuple[DefenderSummary, ...]

    def defender(self, label: str) -> DefenderSummary | None:
        return next((d for d in self.defenders if d.defender == label), None)

    def to_dict(self) -> dict[str, Any]:
        return {"version": SUMMARY_VERSION, **asdict(self)}


def audit_summary(evidence: AuditEvidence, verdict: AuditVerdict) -> AuditSummary:
    defenders = []
    for audit, dv in zip(evidence.defenders, verdict.defenders):
        tried = max((p.k for p in audit.eot.points), default=0) if audit.eot is not None else 0
        defenders.append(DefenderSummary(dv.defender, dv.overall, tuple((c.number, c.verdict) for c in dv.checks),
                                         dv.knee, tried))
    a = evidence.attacker
    return AuditSummary(evidence.model.identity, evidence.model.label, a["attack"], a["id"], int(a["eot"]),
                        tuple(defenders))


def summary_from_dict(blob: Any, source: str = "<memory>") -> AuditSummary:
    """An :class:`AuditSummary` from its JSON form; anything malformed is a one-line ``DefdropError``."""
    with untrusted(f"{source}: not a defdrop audit summary"):
        if not isinstance(blob, dict) or blob.get("version") != SUMMARY_VERSION:
            raise DefdropError(f"{source}: not a defdrop audit summary (version {SUMMARY_VERSION} expected)")
        defenders = []
        for d in blob["defenders"]:
            verdicts = tuple((int(n), str(v)) for n, v in d["verdicts"])
            if any(v not in VERDICTS for _, v in verdicts) or d["overall"] not in VERDICTS:
                raise DefdropError(f"{source}: unknown verdict in defender {d['defender']!r}")
            knee = d["knee"]
            if knee is not None and (isinstance(knee, bool) or not isinstance(knee, int) or knee < 1):
                raise DefdropError(f"{source}: knee {knee!r} of {d['defender']!r} is not a positive integer")
            defenders.append(DefenderSummary(str(d["defender"]), str(d["overall"]), verdicts, knee,
                                             int(d["eot_tried"])))
        eot = blob["attacker_eot"]
        if isinstance(eot, bool) or not isinstance(eot, int) or eot < 1:
            raise DefdropError(f"{source}: attacker_eot {eot!r} is not a positive integer")
        return AuditSummary(str(blob["model"]), str(blob["model_label"]), str(blob["attack"]), str(blob["attacker"]),
                            eot, tuple(defenders))


def read_audit_json(path: str | Path) -> AuditSummary:
    """The summary of an audit JSON written by ``defdrop audit`` (its ``summary`` member)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DefdropError(f"{path}: not a defdrop audit JSON (not UTF-8 text)") from None
    with untrusted(f"{path}: not a defdrop audit JSON"):
        blob = json.loads(text)
    if not isinstance(blob, dict) or "summary" not in blob:
        raise DefdropError(f"{path}: not a defdrop audit JSON (no summary)")
    return summary_from_dict(blob["summary"], str(path))


@dataclass(frozen=True)
class Backing:
    """Whether the audit backs one defender of a decision (``role``: e.g. ``recommended``, ``Algorithm 1``).

    ``table_eot``: the largest EOT k among the table's attackers of the audited attack (None if it has none)."""

    defender: str
    role: str
    status: str
    attack: str
    knee: int | None
    eot_tried: int
    table_eot: int | None
    failed: tuple[int, ...] = ()
    inconclusive: tuple[int, ...] = ()
    not_run: tuple[int, ...] = ()


def backing(summary: AuditSummary, defender: str, model: str | None, attackers: Sequence[tuple[str, int]],
            role: str = "recommended") -> Backing:
    """The audit's backing for ``defender`` (a strategy id; a table's ``model-label/`` prefix is dropped) of the model
    ``model`` (content hash; None: not checked) against a table whose attackers are ``(attack, eot)`` pairs."""
    label = defender.rsplit("/", 1)[-1]
    eots = [int(e) for a, e in attackers if a == summary.attack]
    table_eot = max(eots) if eots else None
    d = summary.defender(label)
    if model is not None and model != summary.model:
        return Backing(label, role, OTHER_MODEL, summary.attack, None, 0, table_eot)
    if d is None:
        return Backing(label, role, NOT_AUDITED, summary.attack, None, 0, table_eot)
    args = (label, role)
    rest = dict(attack=summary.attack, knee=d.knee, eot_tried=d.eot_tried, table_eot=table_eot, failed=d.failed,
                inconclusive=d.inconclusive, not_run=tuple(n for n, v in d.verdicts if v == NOT_RUN))
    if any(n != 4 for n in d.failed):  # check 4 failing (EOT still rising) is the "no knee" case below
        return Backing(*args, status=CHECKS_FAILED, **rest)
    if not d.eot_run:
        return Backing(*args, status=EOT_NOT_RUN, **rest)
    if d.knee is None:
        return Backing(*args, status=NO_KNEE, **rest)
    if table_eot is None:
        return Backing(*args, status=OTHER_ATTACK, **rest)
    return Backing(*args, status=BACKED if table_eot >= d.knee else BELOW_KNEE, **rest)


def report_backings(summary: AuditSummary, report) -> list[Backing]:
    """The backing of a solve report's recommendation (each defender of its mix) and of Algorithm 1's pick (one
    line for a defender that is both)."""
    attackers = [(a.attack, a.eot) for a in report.attackers]
    models = {d.label: d.model for d in report.defenders}
    roles: dict[str, list[str]] = {}
    for label, _ in report.recommendation.mix:
        roles.setdefault(label, []).append("recommended")
    if report.recommendation.algorithm1 is not None:
        roles.setdefault(report.recommendation.algorithm1, []).append("Algorithm 1's")
    return [backing(summary, label, models.get(label), attackers, " and ".join(r)) for label, r in roles.items()]
