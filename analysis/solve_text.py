"""The words of a decision: what ``defdrop solve`` prints (markdown), its JSON text, and the reasons and notes the
HTML page and the reproduce report reuse. ``gameplay.solve`` decides and returns data; this module only writes.
"""
from __future__ import annotations

import json
import math

import numpy as np

from gameplay.rules import DEFAULT_BUDGET_SOURCE
from gameplay.solve import Note, Recommendation, SolveReport


def action(rec: Recommendation) -> str:
    """``deploy <defender>`` or ``randomize per query: <defender> p, ...``."""
    if not rec.mix:
        return "no recommendation"
    if not rec.mixed:
        return f"deploy {rec.mix[0][0]}"
    return "randomize per query: " + ", ".join(f"{label} {_pct(p)}" for label, p in rec.mix)


def _points(v: float) -> str:
    """A difference of two percentages in percentage points, 3 significant digits at most, no sign."""
    v = abs(100 * v)
    if v < 0.005:
        return "0 points"
    text = f"{v:.1f}" if v >= 1 else f"{v:.2g}"
    return f"{text} points"


def _budget_points(eps: float) -> str:
    """An accuracy budget as the user wrote it, in points (0.01 -> "1 point")."""
    v = round(100 * eps, 6)
    return f"{v:g} point{'' if v == 1 else 's'}"


def budget_text(rec: Recommendation) -> str:
    """The accuracy budget the recommendation was chosen under, and where it comes from."""
    if rec.accuracy_budget is None:
        return "no accuracy budget (--max-accuracy-drop none)"
    limit = f"drop below {_budget_points(rec.accuracy_budget)}"
    if rec.budget_source == "default":
        return f"default accuracy budget: {limit}, {DEFAULT_BUDGET_SOURCE}"
    return f"accuracy budget: {limit}"


def accuracy_cost(rec: Recommendation) -> str:
    """What the recommendation costs in clean accuracy: its (expected) accuracy and the drop from the undefended
    reference, in percent and percentage points."""
    if not rec.mix or not math.isfinite(rec.accuracy):
        return "clean accuracy unknown"
    avg = " on average" if rec.mixed else ""
    drop = rec.accuracy_drop
    side = "below" if drop >= 0 else "above"
    ref = f"the undefended {_pct(rec.reference_accuracy)}" if rec.reference_accuracy is not None else \
        "each model's undefended accuracy"
    text = f"clean accuracy {_pct(rec.accuracy)}{avg}, {_points(drop)} {side} {ref}"
    if rec.mixed and rec.accuracy_drop_max > drop + 1e-9:
        text += f" (at most {_points(rec.accuracy_drop_max)})"
    return text


def headline(rec: Recommendation) -> str:
    """The decision in one line, never without its price: what to deploy, the clean accuracy it keeps and loses,
    and the accuracy budget it was chosen under (the line every output prints in bold)."""
    if not rec.mix:
        return "no recommendation"
    return f"{action(rec)}: {accuracy_cost(rec)}; {budget_text(rec)}"


def reasons(report: SolveReport) -> list[str]:
    """Why the recommendation is what it is, one sentence a line (written from the report's numbers)."""
    rec = report.recommendation
    attackers = report.attacker_labels
    n_att = len(attackers)
    name = rec.solver
    why: list[str] = []
    if name == "minimax":
        if rec.zero_sum:
            why.append(f"The game is zero-sum (mu = lambda = 0): the minimax mix holds every one of the {n_att} "
                       f"attacker strategies to an expected ASR of at most {_pct(rec.worst_case_asr)} "
                       f"(reached by {rec.worst_attacker}), and no other defender mix guarantees less.")
        else:
            why.append("The defender's security (maximin) strategy: the best guarantee on its own utility against "
                       "an attacker who only wants to hurt it.")
    elif name == "stackelberg":
        p = report.params
        if rec.zero_sum:
            why.append("The strong Stackelberg commitment (zero-sum: its value equals the minimax value).")
        else:
            why.append(f"The game is general-sum (mu = {p['mu']:g}, lambda = {p['lam']:g}): deploying a defense is a "
                       "commitment the attacker can probe, so the defender commits to the strong Stackelberg mix "
                       f"and the attacker best-responds ({rec.follower}, ASR {_pct(rec.follower_asr)}); ties in the "
                       "attacker's response are assumed to favour the defender.")
        if rec.cautious_worst_asr is not None:
            why.append(f"Cautious alternative, the maximin security strategy: worst-case ASR "
                       f"{_pct(rec.cautious_worst_asr)} ({rec.cautious_worst_attacker}).")
    elif name == "nash":
        why.append(f"The Nash equilibrium best for the defender, among {rec.nash_count} found.")
    else:
        why.append("Only Algorithm 1 was run: its rate is the recommendation.")
    if name != "algorithm1":
        if rec.mixed:
            why.append(f"The optimal strategy is mixed: draw the defense per query; the best single strategy, "
                       f"{rec.fixed}, lets {rec.fixed_worst_attacker} reach {_pct(rec.fixed_worst_asr)}.")
        else:
            why.append("The optimal strategy is pure: one fixed defense is optimal.")
    alg1 = report.algorithm1
    if alg1 is not None:
        if rec.algorithm1_worst_asr is not None:
            why.append(f"The paper's Algorithm 1 picks r' = {rec.algorithm1_rate:g} (the largest rate before the "
                       f"accuracy drop first reaches epsilon = {alg1.choice.epsilon:g}); there "
                       f"{rec.algorithm1_worst_attacker} reaches {_pct(rec.algorithm1_worst_asr)}. Algorithm 1 looks "
                       "at accuracy only; the game also weighs what each rate does to the attacker.")
        else:
            why.append(f"The paper's Algorithm 1 picks r' = {rec.algorithm1_rate:g} (no test dropout): even the "
                       "first rate on the grid loses too much accuracy.")
    rob = report.robustness
    if rob is not None and rob.solved and rec.mix:
        top = rec.mix[0][0]
        q = rob.quantiles("worst_asr")
        why.append(f"Across {rob.solved} resampled tables, {top} got the largest minimax weight in "
                   f"{_pct(rob.share(top))} of them; the worst-case ASR ranged {_pct(q['q05'])}-{_pct(q['q95'])} "
                   "(5%-95%).")
        if rob.algorithm1_choice and rec.algorithm1:
            why.append(f"Algorithm 1 chose {rec.algorithm1} in "
                       f"{_pct(rob.share(rec.algorithm1, 'algorithm1_choice'))} of them.")
    adaptive = report.adaptive
    if adaptive is not None:
        why.append(f"Adaptive attackers (EOT, the expected-success test or kappa > 0; {len(adaptive.adaptive)} of "
                   f"{n_att} columns): a mix optimized against the others alone would promise "
                   f"{_pct(adaptive.naive_asr)} but concede {_pct(adaptive.naive_vs_adaptive_asr)} to them; the "
                   f"recommended mix holds them to {_pct(adaptive.recommended_adaptive_asr)}.")
    elif any(n.code == "no_adaptive_attacker" for n in report.notes):
        why.append("No attacker in the table is adaptive (EOT gradients, the expected-success test or kappa > 0): "
                   "against a randomized defense these values may be optimistic.")
    return why


def note_text(note: Note) -> str:
    """One note in words."""
    g = note.get
    if note.code == "reference_fallback":
        return f"model {g('model')} has no undefended row: its reference accuracy is the {g('source')}."
    if note.code == "l2_paid":
        return f"the attacker's cost mu x L2 uses the L2 paid per attack from {g('source')}."
    if note.code == "algorithm1_not_run":
        return "Algorithm 1 needs the accuracy constraint (the maximum accuracy drop); it was not run."
    if note.code == "algorithm1_no_undefended_row":
        return "Algorithm 1 stops at r' = 0 and the table has no undefended row, so its ASR is unknown."
    if note.code == "nash_time_limit":
        return f"Lemke-Howson hit its time limit from {g('timed_out')} of {g('labels')} labels."
    if note.code == "nash_none":
        return "no Nash equilibrium passed the regret check within the time limit."
    if note.code == "removed":
        labels = list(g("labels", ()))
        one = len(labels) == 1
        return (f"{len(labels)} defender strateg{'y exceeds' if one else 'ies exceed'} the accuracy budget and "
                f"{'is' if one else 'are'} not in the game: {', '.join(labels)}.")
    if note.code == "columns_filled":
        cols = list(g("columns", ()))
        return (f"the table lacks the column(s) {', '.join(cols)}: each strategy's attack, EOT, success test, kappa, "
                "defense and r' are read from its id, a missing model column makes it one model's, and missing "
                "intervals and L2 are unknown.")
    if note.code == "intervals_unknown":
        return (f"the table gives no 95% interval for {g('cells')} ASR cell(s) and {g('accuracies')} clean "
                "accuracy(ies): those intervals are unknown (shown as \"unknown\"), and nothing below rests on them.")
    if note.code == "robustness_skipped":
        return ("robustness: skipped, because the table has neither intervals nor per-image data to resample; how "
                "sure the recommendation is, is unknown.")
    if note.code == "no_adaptive_attacker":
        return "no attacker in the table is adaptive; against a randomized defense the values may be optimistic."
    return note.code


def solve_json(report: SolveReport) -> dict:
    """The report's data plus its words (headline, reasons, notes as text)."""
    out = report.to_json()
    out["recommendation"]["headline"] = headline(report.recommendation)
    out["recommendation"]["why"] = reasons(report)
    for note, data in zip(report.notes, out["notes"]):
        data["text"] = note_text(note)
    return out


def report_json_text(report: SolveReport) -> str:
    """:func:`solve_json` as strict JSON text (what ``--json`` prints)."""
    return json.dumps(solve_json(report), indent=2, allow_nan=False)


# ---------------------------------------------------------------------------------------------- numbers
# One way to write each kind of number, shared by the markdown and the HTML page so both show the same text:
# rates in percent with one decimal, differences of rates in points, other numbers in fixed point (never
# scientific notation), unknown values as "-" (a missing interval as "unknown").
def pct(v: float | None) -> str:
    """A rate (a fraction) in percent, one decimal: 0.914 -> ``91.4%``; unknown -> ``-``."""
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def number(v: float | None, decimals: int = 3) -> str:
    """A plain number in fixed point, trailing zeros dropped: -0.4 -> ``-0.4``, 1.1e-16 -> ``0``."""
    if v is None or not math.isfinite(v):
        return "-"
    text = f"{v:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def signed_points(v: float | None) -> str:
    """A difference of rates in percentage points, signed: 0.005 -> ``+0.5 pt``; 0 -> ``0 pt``."""
    if v is None or not math.isfinite(v):
        return "-"
    text = _points(v).replace(" points", "")
    return "0 pt" if text == "0" else f"{'+' if v > 0 else '-'}{text} pt"


def utility(v: float | None) -> str:
    """A player's utility or game value on the ASR scale, in points (ASR 1 = 100): -0.4 -> ``-40.0``."""
    if v is None or not math.isfinite(v):
        return "-"
    text = f"{100 * v:.1f}"
    return "0.0" if text == "-0.0" else text


def regret_text(v: float | None) -> str:
    """An equilibrium's regret (utility, ASR = 1) in points: 0, below 0.01 points, or ``0.25 points``."""
    if v is None or not math.isfinite(v):
        return "-"
    if v <= 1e-12:
        return "0"
    return "< 0.01 points" if v < 1e-4 else f"{100 * v:.2f} points"


def interval(low: float | None, high: float | None) -> str:
    """A 95% interval of rates: ``[88.0%, 93.1%]``, or ``unknown`` where the table has none."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "unknown"
    return f"[{pct(low)}, {pct(high)}]"


_pct, _num = pct, number


def defender_rows(r: SolveReport, detail: bool = False) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the defender-strategies table, as text (the markdown's; ``detail`` adds the model, the
    defense and the rates for the HTML page)."""
    asr = np.asarray(r.asr)
    kept = set(r.game_rows)
    rates = detail and any(math.isfinite(d.train_dropout) for d in r.defenders)
    header = (["defender"] + (["model", "defense", "test dropout r'"] if detail else [])
              + (["training dropout r"] if rates else [])
              + ["clean accuracy", "accuracy drop", "in the game", "mean ASR", "worst-case ASR (attacker)"])
    rows = []
    for i, d in enumerate(r.defenders):
        j = int(np.argmax(asr[i]))
        rows.append([d.label] + ([d.model_name, d.defense, "-" if d.defense == "sap" else f"{d.test_dropout:g}"]
                                 if detail else [])
                    + ([number(d.train_dropout)] if rates else [])
                    + [pct(d.accuracy), signed_points(d.accuracy_drop),
                       "yes" if i in kept else "no (drop over the budget)", pct(asr[i].mean()),
                       f"{pct(asr[i, j])} ({r.attackers[j].label})"])
    return header, rows


# ---------------------------------------------------------------------------------------------- markdown


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in row] for row in [header] + rows]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def _mix_text(mix: dict[str, float], limit: int = 8) -> str:
    items = list(mix.items())
    text = ", ".join(f"{k} {_pct(v)}" for k, v in items[:limit])
    return text + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


MAX_MATRIX_COLUMNS = 8
MAX_LIST = 20


def solve_markdown(r: SolveReport) -> str:
    """The whole report as markdown (what ``defdrop solve`` prints)."""
    p = r.params
    rec = r.recommendation
    m, n = len(r.game_rows), len(r.attackers)
    eps = p["max_accuracy_drop"]
    picked = ", ".join(f"{k} {v}" for k, v in (("model", p.get("model")), ("game", p.get("game"))) if v)
    out = [f"# defdrop solve: {r.source}" + (f" ({picked})" if picked else ""), ""]
    constraint = (f"{budget_text(rec)} (epsilon = {eps:g}); {len(r.removed)} of {len(r.defenders)} "
                  "defender strategies removed" if eps is not None else budget_text(rec))
    out.append(f"Game: {m} defender x {n} attacker strategies, **{r.kind}** (mu = {p['mu']:g}, lambda = "
               f"{p['lam']:g}); {constraint}.")
    out.append("Attacker utility: ASR" + (f" - {p['mu']:g} x L2 paid per attack" if p["mu"] else "")
               + "; defender utility: -ASR" + (f" - {p['lam']:g} x accuracy drop" if p["lam"] else "")
               + " (L2 earns the defender nothing here; the paper counts a larger L2 as a stronger defense).")
    for ref in r.references:
        weights = f" (weights {ref.model[:12]})" if ref.model[:12] != ref.model_name else ""
        out.append(f"Reference (undefended) accuracy of model {ref.model_name}{weights}: "
                   f"{_pct(ref.accuracy)}, from the {ref.source}"
                   + (f"; trained by the {ref.recipe} recipe, its accuracy drops in the game are measured from the "
                      f"standard model {ref.baseline_name}'s {_pct(ref.baseline_accuracy)}, so the recipe's own "
                      "accuracy cost counts." if ref.baseline_model else "."))
    out += ["", "## Recommendation", "", f"**{headline(rec)}** ({rec.solver}); worst-case expected ASR "
            f"{_pct(rec.worst_case_asr)} ({rec.worst_attacker}).", ""]
    out.append(f"- Best single strategy: {rec.fixed} (worst attacker {rec.fixed_worst_attacker}, ASR "
               f"{_pct(rec.fixed_worst_asr)}).")
    if rec.algorithm1_rate is not None:
        out.append(f"- Algorithm 1 (paper): r' = {rec.algorithm1_rate:g}"
                   + (f" = {rec.algorithm1} (worst attacker {rec.algorithm1_worst_attacker}, ASR "
                      f"{_pct(rec.algorithm1_worst_asr)})." if rec.algorithm1 else "."))
    out += [""] + [f"- {line}" for line in reasons(r)]

    out += ["", "## Defender strategies", ""]
    asr = np.asarray(r.asr)
    out.append(_md_table(*defender_rows(r)))
    if n <= MAX_MATRIX_COLUMNS:
        out += ["", "## Payoff matrix: ASR [95% interval]", ""]
        rows = [[d.label] + [f"{_pct(asr[i, j])} {interval(r.asr_low[i][j], r.asr_high[i][j])}"
                             for j in range(n)] for i, d in enumerate(r.defenders)]
        out.append(_md_table(["defender \\ attacker"] + list(r.attacker_labels), rows))
    else:
        out += ["", f"(The {len(r.defenders)} x {n} payoff matrix is drawn as a heatmap in the HTML report.)"]

    if r.algorithm1 is not None:
        a1 = r.algorithm1
        c = a1.choice
        out += ["", "## Algorithm 1 (Wang et al. 2018, section 3.4)", ""]
        stop = (f"stops at r' = {c.stopped_at:g} (accuracy {_pct(c.stopped_accuracy)} <= "
                f"{_pct(c.reference_accuracy - c.epsilon)})" if c.stopped_at is not None else
                "never violates the constraint on the grid")
        names = {ref.model: ref.model_name for ref in r.references}
        step1 = f", step 1's choice: {a1.selection}" if len(a1.per_model) > 1 and a1.selection else ""
        out.append(f"Model {names.get(a1.model, a1.model[:12])} (undefended accuracy a_max "
                   f"{_pct(c.reference_accuracy)}{step1}): the walk over r' = {', '.join(f'{g:g}' for g in c.grid)} "
                   f"{stop}; chosen **r' = {c.rate:g}** (accuracy {_pct(c.accuracy)}), the last rate with "
                   "a > a_max - epsilon before the first that fails it (the pseudo-code's loop ends holding the "
                   "failing rate; the text asks for the largest rate meeting the requirement).")
        if len(a1.per_model) > 1:
            out.append("Other models: " + "; ".join(f"{names.get(m, m[:12])}: r' = {ch.rate:g}"
                                                    for m, _, _, ch in a1.per_model if m != a1.model))
        rows = sorted(a1.rows, key=lambda row: -(row.asr if row.asr is not None else -1))
        out += ["", _md_table(["attacker", "test dropout r'", "ASR [95% interval]"],
                              [[row.attacker, f"{row.rate:g}",
                                f"{_pct(row.asr)} {interval(row.asr_low, row.asr_high)}"]
                               for row in rows[:MAX_LIST]])]
        if len(rows) > MAX_LIST:
            out.append(f"({len(rows) - MAX_LIST} more attackers with lower ASR)")

    if r.best_responses is not None:
        br = r.best_responses
        labels = r.game_defenders
        out += ["", "## Best responses", ""]
        rows = []
        for j, best in enumerate(br.defender[:MAX_LIST]):
            i = best[0]
            att_best = br.attacker[i][0]
            shown = ", ".join(labels[k] for k in best[:3]) + (" ..." if len(best) > 3 else "")
            rows.append([r.attacker_labels[j], shown,
                         _pct(asr[r.game_rows[i], j]), r.attacker_labels[att_best]])
        out.append(_md_table(["attacker", "defender's best response", "ASR there",
                              "attacker's best response to that"], rows))
        if n > MAX_LIST:
            out.append(f"({n - MAX_LIST} more attackers in the JSON output)")
        if br.pure_equilibria:
            out.append("")
            out.append("Pure equilibria (mutual best responses): " + ", ".join(
                f"({labels[i]}, {r.attacker_labels[j]})" for i, j in br.pure_equilibria[:10]))

    for title, eq in (("Minimax", r.minimax), ("Stackelberg (defender commits)", r.stackelberg)):
        if eq is None:
            continue
        worst, wa = r.worst_case(eq)
        out += ["", f"## {title}", "", f"- method: {eq.method}; regret {regret_text(eq.regret)}",
                f"- defender: {_mix_text(r.mix(eq))}", f"- attacker: {_mix_text(r.mix(eq, 'attacker'))}",
                f"- values (points, ASR = 100): defender {utility(eq.defender_value)}, attacker "
                f"{utility(eq.attacker_value)}; expected ASR "
                f"{_pct(r.expected_asr(eq))}; worst-case ASR {_pct(worst)} ({wa})"]
    if r.minimax is not None and r.stackelberg is not None and r.kind == "zero-sum":
        out.append(f"- zero-sum check: minimax value {number(100 * r.minimax.defender_value, 4)} = Stackelberg "
                   f"value {number(100 * r.stackelberg.defender_value, 4)} (points)")

    if r.nash is not None:
        nr = r.nash
        out += ["", "## Nash equilibria", "",
                f"- {len(nr.equilibria)} equilibri{'um' if len(nr.equilibria) == 1 else 'a'} by {nr.method} "
                f"({'complete enumeration' if nr.complete else f'{len(nr.labels)} dropped labels'}), each passing "
                f"the regret check (tolerance {number(nr.eps, 9)}); {nr.rejected} candidate(s) failed it; "
                f"{nr.seconds:.2f} s"]
        if nr.degenerate:
            out.append("- the game is **degenerate**: " + "; ".join(nr.degeneracy)
                       + ". Equilibria may form continua; the list shows points of them.")
        for k, eq in enumerate(sorted(nr.equilibria, key=lambda e: -e.defender_value)[:5]):
            out.append(f"- #{k + 1}: defender {_mix_text(r.mix(eq), 4)} | attacker "
                       f"{_mix_text(r.mix(eq, 'attacker'), 4)} | expected ASR {_pct(r.expected_asr(eq))}")
        if len(nr.equilibria) > 5:
            out.append(f"- ... {len(nr.equilibria) - 5} more in the JSON output")

    if r.robustness is not None:
        rb = r.robustness
        out += ["", "## Robustness", "", f"{rb.method}; {rb.samples} resamples (seed {rb.seed})"
                + (f", {rb.infeasible} without a feasible defender" if rb.infeasible else "") + ".", ""]
        mean = dict(rb.minimax_weight)
        rows = [[label, str(count), _pct(count / rb.solved), _pct(mean.get(label, 0.0))]
                for label, count in rb.minimax_choice[:10]]
        out.append(_md_table(["minimax's largest weight", "resamples", "share", "mean weight"], rows))
        if rb.algorithm1_choice:
            out += ["", _md_table(["Algorithm 1's rate", "resamples", "share"],
                                  [[label, str(c), _pct(c / rb.samples)] for label, c in rb.algorithm1_choice[:10]])]
        q, v = rb.quantiles("worst_asr"), rb.quantiles("value")
        if q:
            out += ["", "Worst-case ASR of the minimax mix, quantiles 5/25/50/75/95%: "
                    + " / ".join(_pct(q[k]) for k in q) + ".",
                    "Game value (defender, points), same quantiles: " + " / ".join(utility(v[k]) for k in v) + ".",
                    "(The worst case is a maximum over noisy columns, so resampling biases it upward.)"]
    if r.notes:
        out += ["", "## Notes", ""] + [f"- {note_text(note)}" for note in r.notes]
    out += ["", "Seconds: " + ", ".join(f"{k} {s:.2f}" for k, s in r.seconds)]
    return "\n".join(out) + "\n"


