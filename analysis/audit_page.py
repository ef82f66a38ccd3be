"""``defdrop audit`` in words and pictures: one self-contained page (the verdict table, the EOT-saturation curve,
the loss-vs-iteration curves, every run and what it cost), its JSON form, the console summary, and the sentence
that says whether an audit backs a decision.

:func:`run_audit` is the whole command as a library call: measure (:mod:`payoffs.audit`), decide
(:mod:`gameplay.audit_rules`), and return both; :func:`write_audit` writes the page and the JSON.
"""
from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import plotly.graph_objects as go

from analysis.html import write_page
from analysis.report import formatted_blocks
from gameplay import audit_backing as ab
from gameplay.audit_rules import (
    EOT_MARGIN,
    FAIL,
    FIXED_MASK_MARGIN,
    GRADIENT_FAILURE_SHARE,
    INCONCLUSIVE,
    ITERATION_MARGIN,
    LOSS_FLAT_SHARE,
    NAMES,
    NEAR_TOTAL,
    ORDER_MARGIN,
    PASS,
    RANDOM_MIN_SHARE,
    AuditVerdict,
    DefenderVerdict,
    decide,
)
from payoffs.audit.evidence import AuditEvidence, DefenderAudit, Estimate
from payoffs.errors import DefdropError
from payoffs.io import atomic_write_text
from payoffs.stats import LEVEL

EOT_AXIS_PAD = 0.12
"""The EOT figure's k axis spans the measured k (and the audited attacker's) plus this much, in log10 units."""
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
JSON_VERSION = 1


# ---------------------------------------------------------------------------------------------- the command
def run_audit(source, defenders, attacker, *, settings=None, data=None, slot: str | None = None,
              device="cpu", log: Callable[[str], None] | None = None) -> tuple[AuditEvidence, AuditVerdict]:
    """Measure every chosen check for ``attacker`` against each of ``defenders`` on the model ``source`` (a
    :class:`payoffs.sources.ModelSource`), then decide them."""
    from gameplay.audit_rules import eot_step_saturated
    from payoffs.audit.runner import audit_source

    evidence = audit_source(source, defenders, attacker, saturated=eot_step_saturated, settings=settings, data=data,
                            slot=slot, device=device, log=log)
    return evidence, decide(evidence)


# ---------------------------------------------------------------------------------------------- numbers as text
def pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def pts(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:+.1f} pp"


def interval(e: Estimate | None, diff: bool = False) -> str:
    """``12.3% [8.0%, 17.1%]`` (or ``+4.0 pp [...]`` for a difference; ``exactly 0`` for identical runs)."""
    if e is None:
        return "-"
    if e.identical:
        return "exactly 0 (the same computation)"
    f = pts if diff else pct
    return f"{f(e.mean)} [{f(e.low)}, {f(e.high)}]"


def level_text() -> str:
    return f"{round(100 * LEVEL)}%"


# ---------------------------------------------------------------------------------------------- per check
def check_sentence(number: int, audit: DefenderAudit, settings: dict) -> str:
    """What check ``number`` measured for one defender, in one or two sentences (the verdict is shown beside)."""
    if number == 1:
        e = audit.randomness
        declared = ("declares randomness" if e.declared_random else
                    "declares no randomness (one sample stands for all)")
        return (f"The defender {declared}. Plain repeated forward passes ({e.passes} per image) changed the logits "
                f"of {interval(e.logits_differ)} of {e.images} images (the top-1 prediction of "
                f"{pct(e.predictions_differ.mean)}). Inside the attack, a redraw of the defense on the same "
                f"activations changed {interval(e.redraw_changes)} of the rows over {e.probed_calls} defense calls; "
                f"modules in training mode: {e.training_before} before, {e.training_during} during, "
                f"{e.training_after} after the attack. A random defender must change most of them "
                f"(over {pct(RANDOM_MIN_SHARE)}), a deterministic one fewer than that.")
    if number == 2:
        e = audit.fixed_mask
        text = (f"Against one frozen draw of the defender (a deterministic network) the attack reaches "
                f"{interval(e.frozen_asr)}, against the undefended model {interval(e.undefended_asr)}; frozen minus "
                f"undefended {interval(e.difference, True)} (it may fall short by less than "
                f"{100 * FIXED_MASK_MARGIN:g} pp).")
        if e.unbudgeted:
            text += (f" The attack has no distortion budget, so it must succeed on about every attack (interval "
                     f"above {pct(NEAR_TOTAL)}); if it does not, the attack, not the defense's randomness, explains "
                     "the robustness.")
        return text
    if number == 3:
        e = audit.unbounded
        return (f"{e.how}: the target wins in most of the M = {settings['eval_samples']} fresh defender samples on "
                f"{interval(e.majority)} of the attacks (mean share of samples {pct(e.asr.mean)}). The criterion is "
                "the majority because the attacker controls the input, not the defender's draws; it must be about "
                f"100% (interval above {pct(NEAR_TOTAL)}).")
    if number == 4:
        return eot_sentence(audit)
    if number == 5:
        e = audit.iterations
        if not e.applicable:
            return "The attack has no iterations to double (a single step, or a search over features)."
        changed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in e.changed.items())
        return (f"Doubling ({changed}) changes ASR by {interval(e.difference, True)} (a rise must stay below "
                f"{100 * ITERATION_MARGIN:g} pp). The given run's loss path made {interval(e.flatness)} of its "
                f"decrease in its second-to-last tenth (flat at the end: below {pct(LOSS_FLAT_SHARE)}; a straight "
                "fall makes 11%; Pintor et al.'s incomplete-optimization indicator).")
    if number == 6:
        e = audit.ordering
        return (f"At eps = {e.eps:g}, PGD reaches {interval(e.pgd_asr)} and FGSM {interval(e.fgsm_asr)}: PGD minus "
                f"FGSM {interval(e.iterative_minus_single, True)}. White-box {interval(e.whitebox_asr)} against the "
                f"same attack's examples from the undefended model {interval(e.transfer_asr)}: "
                f"{interval(e.whitebox_minus_transfer, True)}. Neither may trail by {100 * ORDER_MARGIN:g} pp or more.")
    if number == 7:
        e = audit.gradients
        return (f"Of {e.images} images x {e.samples} sampled input gradients of the {e.objective}, "
                f"{interval(e.zero)} are all zero and {e.nonfinite_count} contain NaN or inf; uniform noise of "
                f"+-{e.noise_scale:g} flips {interval(e.flips)} of the defender samples' predictions (the same draws "
                f"at both inputs). Both shares must stay below {pct(GRADIENT_FAILURE_SHARE)}.")
    return ""


def eot_sentence(audit: DefenderAudit) -> str:
    e = audit.eot
    from gameplay.audit_rules import eot_knee

    knee = eot_knee(e)
    first, last = e.points[0], e.points[-1]
    text = f"ASR {interval(first.asr)} at k = 1"
    if len(e.points) > 1:
        text += f", {interval(last.asr)} at k = {last.k}"
    if e.deterministic and knee == 1:
        return text + "; the defender draws no randomness, so every k gives the same attack: EOT saturates at k = 1."
    if knee is not None:
        step = e.point(2 * knee).step
        text += (f"; doubling k from {knee} to {2 * knee} changes ASR by {interval(step, True)} (below "
                 f"{100 * EOT_MARGIN:g} pp): EOT saturates at k = {knee}.")
        if e.attacker_eot < knee:
            text += (f" The audited attacker uses k = {e.attacker_eot}, below the knee: its ASR understates what "
                     "EOT achieves against this defender")
            gain = e.point(knee).gain if e.attacker_eot == 1 else None
            text += f" (ASR at the knee minus at k = 1: {interval(gain, True)})." if gain is not None else "."
        return text
    step = last.step
    return text + (f"; the last doubling (k = {last.k // 2} -> {last.k}) still changes ASR by {interval(step, True)}: "
                   f"EOT did not saturate by k = {e.eot_max} (raise eot_max).")


# ---------------------------------------------------------------------------------------------- tables
VERDICT_MARK = {PASS: "pass", FAIL: "FAIL", INCONCLUSIVE: "inconclusive"}


def verdict_frame(audit: DefenderAudit, verdict: DefenderVerdict, settings: dict) -> pd.DataFrame:
    costs = dict(audit.costs)
    rows = []
    for c in verdict.checks:
        cost = costs.get(c.number)
        parts = "; ".join(f"{name}: {v}" for name, v in c.parts)
        rows.append([c.number, c.name, VERDICT_MARK.get(c.verdict, c.verdict), parts,
                     check_sentence(c.number, audit, settings) if cost is not None else "not run",
                     cost.forwards if cost else 0, cost.backwards if cost else 0,
                     round(cost.seconds, 2) if cost else 0.0])
    total = audit.total_cost
    rows.append([8, NAMES[8], "recorded", "", "forward and backward passes (examples through the network) and "
                 "seconds per check; a run several checks share is counted in the first", total.forwards,
                 total.backwards, round(total.seconds, 2)])
    return pd.DataFrame(rows, columns=["check", "name", "verdict", "parts", "evidence", "forwards", "backwards",
                                       "seconds"])


def runs_frame(audit: DefenderAudit) -> pd.DataFrame:
    rows = [[r.name, r.attacker, r.against, r.asr.mean, r.asr.low, r.asr.high, r.majority.mean, r.believed,
             r.l2_mean, r.cost.forwards, r.cost.backwards, round(r.cost.seconds, 2)] for r in audit.runs]
    return pd.DataFrame(rows, columns=["run", "attacker", "against", "asr", "asr_low", "asr_high", "asr_majority",
                                       "asr_believed", "l2_mean", "forwards", "backwards", "seconds"])


# ---------------------------------------------------------------------------------------------- figures
def figure_eot_curve(evidence: AuditEvidence, verdict: AuditVerdict) -> go.Figure:
    """ASR (with its interval) against EOT's k, one line per defender; the knee marked where found."""
    fig = go.Figure()
    measured = [int(evidence.attacker.get("eot", 1))]
    for i, (audit, dv) in enumerate(zip(evidence.defenders, verdict.defenders)):
        if audit.eot is None:
            continue
        color = COLORS[i % len(COLORS)]
        pts_ = audit.eot.points
        ks = [p.k for p in pts_]
        measured += ks
        y = [100 * p.asr.mean for p in pts_]
        fig.add_trace(go.Scatter(
            x=ks, y=y, mode="lines+markers", name=audit.defender, line={"color": color},
            error_y={"type": "data", "symmetric": False, "array": [100 * (p.asr.high - p.asr.mean) for p in pts_],
                     "arrayminus": [100 * (p.asr.mean - p.asr.low) for p in pts_]},
            customdata=[[interval(p.step, True) if p.step else "-"] for p in pts_],
            hovertemplate=f"{audit.defender}<br>k = %{{x}}<br>ASR %{{y:.1f}}%<br>change from k / 2: "
                          "%{customdata[0]}<extra></extra>"))
        if dv.knee is not None:
            knee = audit.eot.point(dv.knee)
            fig.add_trace(go.Scatter(
                x=[dv.knee], y=[100 * knee.asr.mean], mode="markers", marker={"symbol": "star", "size": 16,
                                                                                "color": color},
                name=f"{audit.defender}: knee k = {dv.knee}", hovertemplate=f"knee k = {dv.knee}<extra></extra>"))
    eot = int(evidence.attacker.get("eot", 1))
    fig.add_vline(x=eot, line_dash="dot", line_color="#555",
                  annotation_text=f"audited attacker k = {eot}", annotation_position="top left")
    fig.update_layout(
        title=f"EOT saturation: ASR [{level_text()} interval] against k, {evidence.attacker['id']}",
        xaxis={"type": "log", "title": "EOT samples per gradient step k (log scale)", "dtick": math.log10(2),
               "range": [math.log10(min(measured)) - EOT_AXIS_PAD, math.log10(max(measured)) + EOT_AXIS_PAD]},
        yaxis={"title": "attack success rate (%)", "range": [0, 105], "dtick": 10, "ticksuffix": "%"}, height=460)
    return fig


SHOWN_LOSS_RUNS = ("as given", "doubled iterations")
"""Loss curves drawn at first (the others are a click on their legend entry away)."""


def figure_loss_curves(audit: DefenderAudit) -> go.Figure | None:
    """The attack's mean loss per step for every run that has one (the examples still active at each step); the
    audited run and its doubled-iterations run are shown, the others hidden behind their legend entries."""
    runs = [r for r in audit.runs if r.loss is not None and len(r.loss.steps) > 1]
    if not runs:
        return None
    fig = go.Figure()
    for i, r in enumerate(runs):
        fig.add_trace(go.Scatter(
            x=list(r.loss.steps), y=list(r.loss.mean), mode="lines", name=f"{r.name} ({r.attacker})",
            line={"color": COLORS[i % len(COLORS)]}, customdata=list(r.loss.active),
            visible=True if r.name in SHOWN_LOSS_RUNS else "legendonly",
            hovertemplate="step %{x}<br>mean loss %{y:.4g}<br>%{customdata} examples active<extra></extra>"))
    first = runs[0].loss
    if first.segment and first.steps[-1] >= first.segment:
        for b in range(first.segment, first.steps[-1] + 1, first.segment):
            fig.add_vline(x=b - 0.5, line_width=0.5, line_dash="dot", line_color="#bbb")
    fig.update_layout(title=f"Loss against iteration, {audit.defender}" + (
        f" (dotted lines: every {first.segment} steps C&W's binary search restarts the optimization)"
        if runs[0].attacker.startswith("cw") else ""),
                      xaxis={"title": "step"}, yaxis={"title": "mean loss of the active examples", "type": "log"},
                      height=420, legend={"title": "run (click to show or hide)"})
    return fig


# ---------------------------------------------------------------------------------------------- page, JSON, text
def knee_text(audit: DefenderAudit, dv: DefenderVerdict) -> str:
    if audit.eot is None:
        return "EOT not audited (check 4 not run)"
    if dv.knee is None:
        return f"EOT did not saturate by k = {audit.eot.points[-1].k}"
    return f"EOT saturates at k = {dv.knee}"


def summary_lines(evidence: AuditEvidence, verdict: AuditVerdict) -> list[str]:
    """The console summary: one line per defender and check."""
    m = evidence.model
    lines = [f"audit of {evidence.attacker['id']} on {m.label} ({m.identity[:12]}, defense after {m.slot!r}), "
             f"{evidence.images} images x {evidence.attacks // max(1, evidence.images)} targets = {evidence.attacks} "
             f"attacks, M = {evidence.settings['eval_samples']}, {level_text()} intervals over images"]
    for audit, dv in zip(evidence.defenders, verdict.defenders):
        knee = knee_text(audit, dv)
        lines.append(f"{audit.defender}: {dv.overall}; {knee}" + (
            f" (the audited attacker's k = {dv.attacker_eot} is below it)" if dv.attacker_below_knee else ""))
        costs = dict(audit.costs)
        for c in dv.checks:
            cost = costs.get(c.number)
            detail = ", ".join(f"{name} {v}" for name, v in c.parts if v not in (PASS,)) if c.verdict != PASS else ""
            spent = f"  [{cost.forwards} fwd, {cost.backwards} bwd, {cost.seconds:.1f} s]" if cost else ""
            lines.append(f"  {c.number} {c.name}: {c.verdict}" + (f" ({detail})" if detail else "") + spent)
    return lines


def audit_json(evidence: AuditEvidence, verdict: AuditVerdict) -> dict:
    """The machine-readable audit: the summary a decision reads (:mod:`gameplay.audit_backing`), every verdict,
    and all the evidence (NaN as null)."""
    defenders = []
    for audit, dv in zip(evidence.defenders, verdict.defenders):
        defenders.append({"defender": audit.defender, "overall": dv.overall, "knee": dv.knee,
                          "checks": [asdict(c) for c in dv.checks],
                          "costs": {str(n): asdict(c) for n, c in audit.costs}})
    return _plain({"version": JSON_VERSION, "summary": ab.audit_summary(evidence, verdict).to_dict(),
                   "verdicts": defenders, "evidence": evidence.to_dict(), "machine": machine()})


def _plain(obj):
    """JSON-ready: tuples to lists, numpy scalars to Python numbers, NaN and infinities to None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalars
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def machine() -> str:
    import torch
    return (f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.platform()}, "
            f"torch {torch.__version__}")


def page_blocks(evidence: AuditEvidence, verdict: AuditVerdict) -> list:
    m = evidence.model
    s = evidence.settings
    blocks: list = [
        f"Model `{m.label}` ({m.identity[:16]}, dataset {m.dataset or '-'}), defense after layer `{m.slot}` "
        f"({m.split}). Attacker `{evidence.attacker['id']}` (EOT k = {evidence.attacker['eot']}, success test "
        f"`{evidence.attacker['success_test']}`). {evidence.images} test images x "
        f"{evidence.attacks // max(1, evidence.images)} target(s) = {evidence.attacks} attacks, M = "
        f"{s['eval_samples']} fresh defender samples per adversarial example, {s['probe_images']} images for the "
        f"forward-only checks; {level_text()} intervals by bootstrap over images. Seed {s['seed']}; "
        f"{evidence.seconds:.0f} s on {machine()}.",
        "Each check follows the guidance for evaluating randomized defenses (Carlini et al. 2019, "
        "arXiv:1902.06705; Athalye et al. 2018; Tramer et al. 2020; Pintor et al. 2021, arXiv:2106.09947): a "
        "*fail* means a number measured with this attacker says more about the attack than about the defense.",
        "## Summary",
        "\n".join(f"- `{a.defender}`: **{dv.overall}**; {knee_text(a, dv)}"
                  for a, dv in zip(evidence.defenders, verdict.defenders)),
    ]
    if any(a.eot is not None for a in evidence.defenders):
        blocks += ["## EOT saturation", figure_eot_curve(evidence, verdict)]
    for audit, dv in zip(evidence.defenders, verdict.defenders):
        blocks += [f"## {audit.defender}", verdict_frame(audit, dv, s)]
        fig = figure_loss_curves(audit)
        if fig is not None:
            blocks.append(fig)
        blocks += ["### Runs (success under fresh defender samples; cost)", runs_frame(audit)]
    return blocks


def write_audit(evidence: AuditEvidence, verdict: AuditVerdict, html_path: str | Path, *, plotly: str = "inline",
                png: bool = False, log: Callable[[str], None] | None = None) -> tuple[Path, Path]:
    """The page at ``html_path`` and its JSON form beside it (same name, ``.json``); returns both paths. The small
    JSON is written first, so the numbers are kept if the page then fails to fit on disk. ``plotly`` and ``png``:
    as :func:`analysis.html.write_page` (``log`` gets its one line where PNGs cannot be written)."""
    html_path = Path(html_path)
    json_path = json_path_for(html_path)
    try:
        atomic_write_text(json_path, json.dumps(audit_json(evidence, verdict), indent=1, allow_nan=False))
        write_page(html_path, f"defdrop audit: {evidence.attacker['id']} on {evidence.model.label}",
                   formatted_blocks(page_blocks(evidence, verdict)), plotly=plotly, png=png, log=log)
    except OSError as exc:
        raise DefdropError(f"cannot write the audit {exc.filename or html_path}: {exc.strerror or exc}") from None
    return html_path, json_path


def json_path_for(html_path: str | Path) -> Path:
    """``audit.html`` -> ``audit.json``."""
    path = Path(html_path)
    if path.suffix.lower() in (".html", ".htm"):
        return path.with_suffix(".json")
    return path.with_name(path.name + ".json")


# ---------------------------------------------------------------------------------------------- backing
def _checks(numbers: Sequence[int]) -> str:
    return ("check " if len(numbers) == 1 else "checks ") + ", ".join(map(str, numbers))


def backing_sentence(b: ab.Backing) -> str:
    """The verdict printed beside a defender of a decision."""
    who = f"{b.role} {b.defender}"
    table = (f"the table's {b.attack} attackers reach k = {b.table_eot}" if b.table_eot is not None
             else f"the table has no {b.attack} attacker")
    notes = ([f"{_checks(b.inconclusive)} inconclusive"] if b.inconclusive else []) + (
        [f"{_checks(b.not_run)} not run"] if b.not_run else [])
    extra = f" ({'; '.join(notes)})" if notes else ""
    if b.status == ab.BACKED:
        return f"{who}: backed by the audit: EOT saturates at k = {b.knee}; {table}{extra}."
    if b.status == ab.BELOW_KNEE:
        return (f"{who}: WARNING: EOT saturates at k = {b.knee} but {table}: the table's ASR for this defender is "
                f"an underestimate; add attackers with EOT k >= {b.knee}{extra}.")
    if b.status == ab.NO_KNEE:
        return (f"{who}: WARNING: EOT did not saturate by k = {b.eot_tried} in the audit; {table}: the table's ASR "
                f"may be an underestimate{extra}.")
    if b.status == ab.EOT_NOT_RUN:
        return f"{who}: the audit did not run the EOT check (4); no statement on EOT{extra}."
    if b.status == ab.CHECKS_FAILED:
        return (f"{who}: WARNING: the audit fails {_checks(b.failed)} for this defender: the attack, not the "
                "defense, may explain its robustness" + (f"; EOT saturates at k = {b.knee}, {table}" if b.knee
                                                          else "") + f"{extra}.")
    if b.status == ab.OTHER_MODEL:
        return f"{who}: the audit is of another model; no statement."
    if b.status == ab.OTHER_ATTACK:
        return f"{who}: EOT saturates at k = {b.knee} for {b.attack}, but {table}{extra}."
    return f"{who}: not in the audit (audit it with `defdrop audit`)."


def backing_lines(backings: Sequence[ab.Backing]) -> list[str]:
    return [backing_sentence(b) for b in backings]


def audit_report_blocks(evidence: AuditEvidence, verdict: AuditVerdict, backings: Sequence[ab.Backing],
                        note: str = "") -> list:
    """The reproduce report's audit section: whether the audit backs the decision, each defender's verdicts, the
    EOT curve (the full page is ``audit.html``)."""
    head = (f"## Is the attack strong enough? (audit of `{evidence.attacker['id']}` on {evidence.model.label})\n\n"
            + "\n".join(f"- {line}" for line in backing_lines(backings))
            + f"\n\nAll checks, their evidence and cost: `audit.html` / `audit.json`. Sizes: {evidence.images} "
            f"image(s) x {evidence.attacks // max(1, evidence.images)} target(s), M = "
            f"{evidence.settings['eval_samples']}"
            + (f"; {note}." if note else "."))
    rows = [[a.defender] + [c.verdict for c in dv.checks] + [dv.knee if dv.knee is not None else "-"]
            for a, dv in zip(evidence.defenders, verdict.defenders)]
    frame = pd.DataFrame(rows, columns=["defender"] + [f"{n} {NAMES[n]}" for n in range(1, 8)] + ["EOT knee k"])
    blocks: list = [head, frame]
    if any(a.eot is not None for a in evidence.defenders):
        blocks.append(figure_eot_curve(evidence, verdict))
    return blocks


def solve_markdown_with_audit(report, backings: Sequence[ab.Backing]) -> str:
    """``defdrop solve``'s markdown with the audit's verdicts right after the recommendation."""
    from analysis.solve_text import solve_markdown

    text = solve_markdown(report)
    block = "## Audit: is the attack strong enough?\n\n" + "\n".join(f"- {line}" for line in backing_lines(backings))
    marker = "\n## Defender strategies"
    if marker in text:
        head, tail = text.split(marker, 1)
        return f"{head.rstrip()}\n\n{block}\n{marker}{tail}"
    return f"{text.rstrip()}\n\n{block}\n"


def solve_json_with_audit(report, backings: Sequence[ab.Backing]) -> str:
    """``defdrop solve --json`` with an ``audit`` member: each backing and its sentence."""
    from analysis.solve_text import solve_json

    blob = solve_json(report)
    blob["audit"] = [{**asdict(b), "sentence": backing_sentence(b)} for b in backings]
    return json.dumps(_plain(blob), indent=2, allow_nan=False)
