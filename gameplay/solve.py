"""``defdrop solve``: from a payoff CSV to a decision (which r' to deploy), with every solver's answer and how
sure we are. The CLI calls :func:`solve_payoff_csv` and prints :meth:`SolveReport.to_markdown` (or ``to_json``);
``analysis.solve_report.write_solve_report_html`` draws the same report as a page.

How the recommendation is chosen (stated in the report too):

- zero-sum game (mu = lambda = 0): the **minimax** mix. It guarantees the lowest worst-case expected ASR over
  the table's attacker strategies; if it is mixed, the rate is drawn per query. Stackelberg and every Nash
  equilibrium have the same value here.
- general-sum game: the **strong Stackelberg** commitment. Deploying a defense is a commitment the attacker can
  probe; the attacker best-responds to the deployed mix. (The maximin security strategy is shown as the
  cautious alternative.)
- beside it: the best *single* rate (pure maximin) and the paper's Algorithm 1 rate, each with the ASR of its
  strongest attacker; the robustness counts say how often the choice survives resampling the table.

If only some solvers run (``solver=``), the recommendation comes from the first of those, in the order above,
then Nash (the equilibrium best for the defender), then Algorithm 1.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, is_dataclass, replace
from pathlib import Path

import numpy as np

from gameplay.algorithm1 import Algorithm1Table
from gameplay.best_response import BestResponses
from gameplay.equilibrium import Equilibrium
from gameplay.game import Game
from gameplay.minimax import minimax, pure_maximin
from gameplay.nash import NashResult
from gameplay.robustness import Robustness
from gameplay.table import AttackerInfo, DefenderInfo, PayoffTable, Reference, read_payoff_csv
from gameplay.utility import check_parameters, l2_paid
from payoffs.errors import DefdropError

SOLVERS = ("all", "algorithm1", "minimax", "nash", "stackelberg")
NASH_OPTIONS = {"label_time_limit": 0.25, "time_limit": 2.0}


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Recommendation:
    """The deployed defense: ``mix`` = [(defender strategy, probability)], largest first; its worst-case
    expected ASR and the attacker achieving it; the best single strategy (``fixed``) and Algorithm 1's rate
    for comparison; ``why``: the reasoning, one sentence a line."""

    solver: str
    mix: tuple[tuple[str, float], ...]
    worst_case_asr: float
    worst_attacker: str
    fixed: str
    fixed_worst_asr: float
    fixed_worst_attacker: str
    algorithm1: str | None
    algorithm1_rate: float | None
    algorithm1_worst_asr: float | None
    algorithm1_worst_attacker: str | None
    why: tuple[str, ...]

    @property
    def mixed(self) -> bool:
        return len(self.mix) > 1

    @property
    def headline(self) -> str:
        if not self.mixed:
            return f"deploy {self.mix[0][0]}"
        parts = ", ".join(f"{label} {_pct(p)}" for label, p in self.mix)
        return f"randomize per query: {parts}"


@dataclass(frozen=True)
class AdaptiveEffect:
    """What the adaptive attackers (EOT or expected-success columns) do to the value.

    ``naive_*``: minimax against the non-adaptive columns only (what a defender ignoring adaptive attacks
    would deploy and believe); ``naive_vs_adaptive_asr``: what the adaptive columns then get against it;
    ``recommended_*``: the recommended mix's worst-case ASR against each group."""

    adaptive: tuple[str, ...]
    non_adaptive: tuple[str, ...]
    naive_mix: tuple[tuple[str, float], ...]
    naive_asr: float
    naive_vs_adaptive_asr: float
    recommended_non_adaptive_asr: float
    recommended_adaptive_asr: float


@dataclass(frozen=True, eq=False)
class SolveReport:
    """Everything ``defdrop solve`` found, ready for markdown, JSON and the HTML page.

    The table part (``defenders``, ``attackers``, ``asr``...) covers the whole payoff table; equilibria are over
    the game's rows ``game_rows`` (the defenders within the accuracy constraint), in that order.
    """

    source: str
    params: dict
    kind: str
    defenders: tuple[DefenderInfo, ...]
    attackers: tuple[AttackerInfo, ...]
    asr: tuple[tuple[float, ...], ...]
    asr_low: tuple[tuple[float, ...], ...]
    asr_high: tuple[tuple[float, ...], ...]
    references: tuple[Reference, ...]
    game_rows: tuple[int, ...]
    recommendation: Recommendation
    algorithm1: Algorithm1Table | None = None
    best_responses: BestResponses | None = None
    minimax: Equilibrium | None = None
    nash: NashResult | None = None
    stackelberg: Equilibrium | None = None
    robustness: Robustness | None = None
    adaptive: AdaptiveEffect | None = None
    notes: tuple[str, ...] = ()
    seconds: tuple[tuple[str, float], ...] = ()

    # ---------------------------------------------------------------- helpers
    @property
    def game_defenders(self) -> tuple[str, ...]:
        return tuple(self.defenders[i].label for i in self.game_rows)

    @property
    def attacker_labels(self) -> tuple[str, ...]:
        return tuple(a.label for a in self.attackers)

    @property
    def removed(self) -> tuple[str, ...]:
        kept = set(self.game_rows)
        return tuple(d.label for i, d in enumerate(self.defenders) if i not in kept)

    def mix(self, eq: Equilibrium, player: str = "defender", tol: float = 1e-9) -> dict[str, float]:
        """A strategy of ``eq`` as {label: probability}, largest first, zeros left out."""
        labels = self.game_defenders if player == "defender" else self.attacker_labels
        probs = eq.defender if player == "defender" else eq.attacker
        return {labels[i]: float(p) for i, p in sorted(enumerate(probs), key=lambda t: -t[1]) if p > tol}

    def worst_case(self, eq: Equilibrium) -> tuple[float, str]:
        """Highest expected ASR any attacker column gets against ``eq``'s defender mix, and that column."""
        asr = np.asarray(self.asr)[list(self.game_rows)]
        per_col = eq.x @ asr
        j = int(np.argmax(per_col))
        return float(per_col[j]), self.attackers[j].label

    def expected_asr(self, eq: Equilibrium) -> float:
        asr = np.asarray(self.asr)[list(self.game_rows)]
        return float(eq.x @ asr @ eq.y)

    # ---------------------------------------------------------------- outputs
    def to_json(self) -> dict:
        """The same results as plain JSON types (NaN as null), strategies keyed by label."""

        def eq_json(eq: Equilibrium | None) -> dict | None:
            if eq is None:
                return None
            worst, attacker = self.worst_case(eq)
            return {"defender": self.mix(eq), "attacker": self.mix(eq, "attacker"),
                    "defender_value": eq.defender_value, "attacker_value": eq.attacker_value,
                    "expected_asr": self.expected_asr(eq), "worst_case_asr": worst, "worst_attacker": attacker,
                    "method": eq.method, "regret": eq.regret, "params": eq.params}

        labels, attackers = self.game_defenders, self.attacker_labels
        out = {
            "source": self.source, "params": self.params, "kind": self.kind,
            "game": {"defenders": list(labels), "attackers": list(attackers), "removed": list(self.removed)},
            "table": {"defenders": [{**d.to_dict(), "in_game": i in self.game_rows}
                                    for i, d in enumerate(self.defenders)],
                      "attackers": [a.to_dict() for a in self.attackers],
                      "asr": self.asr, "asr_low": self.asr_low, "asr_high": self.asr_high},
            "references": [asdict(r) for r in self.references],
            "recommendation": {**asdict(self.recommendation), "headline": self.recommendation.headline},
            "algorithm1": self.algorithm1.to_dict() if self.algorithm1 else None,
            "best_responses": None if self.best_responses is None else {
                "defender": {attackers[j]: [labels[i] for i in rows]
                             for j, rows in enumerate(self.best_responses.defender)},
                "attacker": {labels[i]: [attackers[j] for j in cols]
                             for i, cols in enumerate(self.best_responses.attacker)}},
            "minimax": eq_json(self.minimax),
            "nash": None if self.nash is None else {
                **{k: v for k, v in asdict(self.nash).items() if k != "equilibria"},
                "equilibria": [eq_json(e) for e in self.nash.equilibria]},
            "stackelberg": eq_json(self.stackelberg),
            "robustness": self.robustness.to_dict() if self.robustness else None,
            "adaptive": asdict(self.adaptive) if self.adaptive else None,
            "notes": list(self.notes), "seconds": dict(self.seconds),
        }
        return _plain(out)

    def to_markdown(self) -> str:
        return _markdown(self)


def _plain(obj):
    """JSON-ready: tuples to lists, numpy scalars to Python, NaN/inf to None."""
    if is_dataclass(obj):
        obj = asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


# ---------------------------------------------------------------------------------------------- solving
def solve_payoff_csv(path: str | Path, *, max_accuracy_drop: float | None, solver: str = "all", mu: float = 0.0,
                     lam: float = 0.0, robustness_samples: int = 200, seed: int = 0) -> SolveReport:
    """Read a payoff CSV, build the game and run the chosen solvers; every input problem is a ``DefdropError``."""
    if solver not in SOLVERS:
        raise DefdropError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    check_parameters(max_accuracy_drop, mu, lam)
    if robustness_samples < 0:
        raise DefdropError(f"robustness samples {robustness_samples} must be >= 0")
    if solver == "algorithm1" and max_accuracy_drop is None:
        raise DefdropError("Algorithm 1 needs the maximum accuracy drop (the paper's epsilon, max_accuracy_drop)")
    return solve_table(read_payoff_csv(path), max_accuracy_drop=max_accuracy_drop, solver=solver, mu=mu, lam=lam,
                       robustness_samples=robustness_samples, seed=seed)


def solve_table(table: PayoffTable, *, max_accuracy_drop: float | None, solver: str = "all", mu: float = 0.0,
                lam: float = 0.0, robustness_samples: int = 200, seed: int = 0) -> SolveReport:
    """:func:`solve_payoff_csv` on a table already read."""
    timings: dict[str, float] = {}

    def timed(name: str, fn):
        t0 = time.perf_counter()
        out = fn()
        timings[name] = time.perf_counter() - t0
        return out

    game = Game.from_payoff_table(table, max_accuracy_drop=max_accuracy_drop, mu=mu, lam=lam)
    run = set(SOLVERS[1:]) if solver == "all" else {solver}
    alg1 = timed("algorithm1", game.algorithm1) if "algorithm1" in run and max_accuracy_drop is not None else None
    br = timed("best_responses", game.best_responses)
    mm = timed("minimax", game.minimax) if "minimax" in run else None
    nash = timed("nash", lambda: game.nash(**NASH_OPTIONS)) if "nash" in run else None
    stack = timed("stackelberg", game.stackelberg) if "stackelberg" in run else None
    rob = None
    if robustness_samples > 0 and run & {"minimax", "algorithm1"}:
        rob = timed("robustness", lambda: game.robustness(samples=robustness_samples, seed=seed))

    notes = _notes(table, game, mu, max_accuracy_drop, alg1, nash, solver)
    params = {"max_accuracy_drop": max_accuracy_drop, "solver": solver, "mu": mu, "lam": lam,
              "robustness_samples": robustness_samples, "seed": seed}
    report = SolveReport(
        source=table.source, params=params, kind=game.kind, defenders=table.defenders, attackers=table.attackers,
        asr=_tt(table.asr), asr_low=_tt(table.asr_low), asr_high=_tt(table.asr_high), references=table.references,
        game_rows=tuple(int(i) for i in game.rows), recommendation=_placeholder(), algorithm1=alg1,
        best_responses=br, minimax=mm, nash=nash, stackelberg=stack, robustness=rob, notes=notes,
        seconds=tuple(timings.items()))
    t0 = time.perf_counter()
    adaptive = _adaptive_effect(report, game, mm or stack)
    recommendation = _recommend(report, game, adaptive)
    timings["recommendation"] = time.perf_counter() - t0
    return replace(report, recommendation=recommendation, adaptive=adaptive, seconds=tuple(timings.items()))


def _tt(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in a)


def _placeholder() -> Recommendation:
    return Recommendation("", (), math.nan, "", "", math.nan, "", None, None, None, None, ())


def _notes(table: PayoffTable, game: Game, mu: float, eps: float | None, alg1: Algorithm1Table | None,
           nash: NashResult | None, solver: str) -> tuple[str, ...]:
    notes = []
    for ref in table.references:
        if not ref.source.startswith("undefended"):
            notes.append(f"model {ref.model_name} has no undefended row: its reference accuracy is the "
                         f"{ref.source}.")
    if mu:
        notes.append(f"the attacker's cost mu x L2 uses the L2 paid per attack from {l2_paid(table)[1]}.")
    if eps is None and solver in ("all", "algorithm1"):
        notes.append("Algorithm 1 needs the accuracy constraint (--max-accuracy-drop); it was not run.")
    if alg1 is not None and alg1.defender is None:
        notes.append("Algorithm 1 stops at r' = 0 and the table has no undefended row, so its ASR is unknown.")
    if nash is not None:
        if nash.timed_out:
            notes.append(f"Lemke-Howson hit its time limit from {len(nash.timed_out)} of {len(nash.labels)} labels.")
        if not nash.equilibria:
            notes.append("no Nash equilibrium passed the regret check within the time limit.")
    if game.removed:
        notes.append(f"{len(game.removed)} defender strateg{'y' if len(game.removed) == 1 else 'ies'} exceed the "
                     f"accuracy constraint and are not in the game: {', '.join(game.removed)}.")
    return tuple(notes)


def _asr_rows(report: SolveReport) -> np.ndarray:
    return np.asarray(report.asr)[list(report.game_rows)]


def _mix_tuple(labels: tuple[str, ...], x: np.ndarray, tol: float = 1e-6) -> tuple[tuple[str, float], ...]:
    order = np.argsort(-x, kind="stable")
    return tuple((labels[i], float(x[i])) for i in order if x[i] > tol)


def _adaptive_effect(report: SolveReport, game: Game, eq: Equilibrium | None) -> AdaptiveEffect | None:
    adaptive = [j for j, a in enumerate(report.attackers) if a.adaptive]
    plain = [j for j, a in enumerate(report.attackers) if not a.adaptive]
    if not adaptive or not plain or eq is None:
        return None
    asr = _asr_rows(report)
    naive = minimax(game.A[:, plain])
    labels = report.game_defenders
    return AdaptiveEffect(
        adaptive=tuple(report.attackers[j].label for j in adaptive),
        non_adaptive=tuple(report.attackers[j].label for j in plain),
        naive_mix=_mix_tuple(labels, naive.x), naive_asr=float((naive.x @ asr[:, plain]).max()),
        naive_vs_adaptive_asr=float((naive.x @ asr[:, adaptive]).max()),
        recommended_non_adaptive_asr=float((eq.x @ asr[:, plain]).max()),
        recommended_adaptive_asr=float((eq.x @ asr[:, adaptive]).max()))


def _recommend(report: SolveReport, game: Game, adaptive: AdaptiveEffect | None) -> Recommendation:
    asr = _asr_rows(report)
    labels = report.game_defenders
    attackers = report.attacker_labels
    zero_sum = game.zero_sum
    order = (("minimax", report.minimax), ("stackelberg", report.stackelberg)) if zero_sum else \
        (("stackelberg", report.stackelberg), ("minimax", report.minimax))
    nash_best = report.nash.best_for_defender() if report.nash else None
    chosen = next(((name, eq) for name, eq in order + (("nash", nash_best),) if eq is not None), None)
    alg1 = report.algorithm1
    if chosen is None and alg1 is not None and alg1.defender in labels:
        pure = np.zeros((len(labels), 1))
        pure[labels.index(alg1.defender)] = 1.0
        chosen = ("algorithm1", Equilibrium.from_profile(game.A[:, :1], game.B[:, :1], pure[:, 0], np.ones(1),
                                                         method="Algorithm 1"))
    elif chosen is None:  # Algorithm 1 stopped at r' = 0 with no such row in the table: fall back
        chosen = ("minimax", minimax(game.A))
    name, eq = chosen
    x = eq.x
    per_col = x @ asr
    j = int(np.argmax(per_col))
    fi, _ = pure_maximin(game.A)
    fj = int(np.argmax(asr[fi]))
    why: list[str] = []
    mix = _mix_tuple(labels, x)
    n_att = len(attackers)
    if name == "minimax":
        if zero_sum:
            why.append(f"The game is zero-sum (mu = lambda = 0): the minimax mix holds every one of the {n_att} "
                       f"attacker strategies to an expected ASR of at most {_pct(per_col[j])} "
                       f"(reached by {attackers[j]}), and no other defender mix guarantees less.")
        else:
            why.append("The defender's security (maximin) strategy: the best guarantee on its own utility against "
                       "an attacker who only wants to hurt it.")
    elif name == "stackelberg":
        why.append(f"The game is general-sum (mu = {game.params['mu']:g}, lambda = {game.params['lam']:g}): deploying "
                   "a defense is a commitment the attacker can probe, so the defender commits to the strong "
                   "Stackelberg mix and the attacker best-responds "
                   f"({attackers[int(np.argmax(eq.y))]}, ASR {_pct(per_col[int(np.argmax(eq.y))])}); "
                   "ties in the attacker's response are assumed to favour the defender."
                   if not zero_sum else
                   "The strong Stackelberg commitment (zero-sum: its value equals the minimax value).")
        if report.minimax is not None and not zero_sum:
            w, a = report.worst_case(report.minimax)
            why.append(f"Cautious alternative, the maximin security strategy: worst-case ASR {_pct(w)} ({a}).")
    elif name == "nash":
        why.append(f"The Nash equilibrium best for the defender, among {len(report.nash.equilibria)} found.")
    else:
        why.append("Only Algorithm 1 was run: its rate is the recommendation.")
    if name != "algorithm1":
        if len(mix) > 1:
            why.append(f"The optimal strategy is mixed: draw r' per query; the best single strategy, {labels[fi]}, "
                       f"lets {attackers[fj]} reach {_pct(asr[fi, fj])}.")
        else:
            why.append("The optimal strategy is pure: one fixed defense is optimal.")
    a1_label = a1_rate = a1_asr = a1_att = None
    if alg1 is not None:
        a1_label, a1_rate = alg1.defender, alg1.choice.rate
        worst = alg1.worst
        if worst is not None:
            a1_asr, a1_att = worst.asr, worst.attacker
            why.append(f"The paper's Algorithm 1 picks r' = {a1_rate:g} (the largest rate before the accuracy drop "
                       f"first reaches epsilon = {alg1.choice.epsilon:g}); there {a1_att} reaches {_pct(a1_asr)}. "
                       "Algorithm 1 looks at accuracy only; the game also weighs what each rate does to the attacker.")
        else:
            why.append(f"The paper's Algorithm 1 picks r' = {a1_rate:g} (no test dropout): even the first rate on "
                       "the grid loses too much accuracy.")
    rob = report.robustness
    if rob is not None and rob.solved:
        top = mix[0][0]
        q = rob.quantiles("worst_asr")
        why.append(f"Across {rob.solved} resampled tables, {top} got the largest minimax weight in "
                   f"{_pct(rob.share(top))} of them; the worst-case ASR ranged {_pct(q['q05'])}-{_pct(q['q95'])} "
                   "(5%-95%).")
        if rob.algorithm1_choice and a1_label:
            why.append(f"Algorithm 1 chose {a1_label} in {_pct(rob.share(a1_label, 'algorithm1_choice'))} "
                       "of them.")
    if adaptive is not None:
        why.append(f"Adaptive attackers (EOT or expected-success, {len(adaptive.adaptive)} of {n_att} columns): "
                   f"a mix optimized against the others alone would promise {_pct(adaptive.naive_asr)} but concede "
                   f"{_pct(adaptive.naive_vs_adaptive_asr)} to them; the recommended mix holds them to "
                   f"{_pct(adaptive.recommended_adaptive_asr)}.")
    elif not any(a.adaptive for a in report.attackers):
        why.append("No attacker in the table is adaptive (EOT gradients or the expected-success test): against "
                   "a randomized defense these values may be optimistic.")
    return Recommendation(solver=name, mix=mix, worst_case_asr=float(per_col[j]), worst_attacker=attackers[j],
                          fixed=labels[fi], fixed_worst_asr=float(asr[fi, fj]), fixed_worst_attacker=attackers[fj],
                          algorithm1=a1_label, algorithm1_rate=a1_rate, algorithm1_worst_asr=a1_asr,
                          algorithm1_worst_attacker=a1_att, why=tuple(why))


# ---------------------------------------------------------------------------------------------- markdown
def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def _num(v: float | None, digits: int = 4) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}g}"


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


def _markdown(r: SolveReport) -> str:
    p = r.params
    rec = r.recommendation
    m, n = len(r.game_rows), len(r.attackers)
    eps = p["max_accuracy_drop"]
    out = [f"# defdrop solve: {r.source}", ""]
    constraint = (f"accuracy drop below {_pct(eps)} (epsilon = {eps:g}); {len(r.removed)} of {len(r.defenders)} "
                  "defender strategies removed" if eps is not None else "no accuracy constraint")
    out.append(f"Game: {m} defender x {n} attacker strategies, **{r.kind}** (mu = {p['mu']:g}, lambda = "
               f"{p['lam']:g}); {constraint}.")
    out.append("Attacker utility: ASR" + (f" - {p['mu']:g} x L2 paid per attack" if p["mu"] else "")
               + "; defender utility: -ASR" + (f" - {p['lam']:g} x accuracy drop" if p["lam"] else "")
               + " (L2 earns the defender nothing here; the paper counts a larger L2 as a stronger defense).")
    for ref in r.references:
        out.append(f"Reference (undefended) accuracy of model {ref.model_name} (weights {ref.model[:12]}): "
                   f"{_pct(ref.accuracy)}, from the {ref.source}.")
    out += ["", "## Recommendation", "", f"**{rec.headline}** ({rec.solver}); worst-case expected ASR "
            f"{_pct(rec.worst_case_asr)} ({rec.worst_attacker}).", ""]
    out.append(f"- Best single strategy: {rec.fixed} (worst attacker {rec.fixed_worst_attacker}, ASR "
               f"{_pct(rec.fixed_worst_asr)}).")
    if rec.algorithm1_rate is not None:
        out.append(f"- Algorithm 1 (paper): r' = {rec.algorithm1_rate:g}"
                   + (f" = {rec.algorithm1} (worst attacker {rec.algorithm1_worst_attacker}, ASR "
                      f"{_pct(rec.algorithm1_worst_asr)})." if rec.algorithm1 else "."))
    out += [""] + [f"- {line}" for line in rec.why]

    out += ["", "## Defender strategies", ""]
    rows = []
    asr = np.asarray(r.asr)
    for i, d in enumerate(r.defenders):
        j = int(np.argmax(asr[i]))
        rows.append([d.label, _pct(d.accuracy), f"{100 * d.accuracy_drop:+.2f} pt",
                     "yes" if i in r.game_rows else "no (drop)", _pct(asr[i].mean()),
                     f"{_pct(asr[i, j])} ({r.attackers[j].label})"])
    out.append(_md_table(["defender", "clean accuracy", "drop", "in game", "mean ASR", "worst attacker"], rows))
    if n <= MAX_MATRIX_COLUMNS:
        out += ["", "## Payoff matrix: ASR [95% interval]", ""]
        rows = [[d.label] + [f"{_pct(asr[i, j])} [{_pct(r.asr_low[i][j])}, {_pct(r.asr_high[i][j])}]"
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
        out += ["", _md_table(["attacker", "r'", "ASR [95% interval]"],
                              [[row.attacker, f"{row.rate:g}",
                                f"{_pct(row.asr)} [{_pct(row.asr_low)}, {_pct(row.asr_high)}]"]
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
            rows.append([r.attacker_labels[j], ", ".join(labels[k] for k in best[:3]) + (" ..." if len(best) > 3 else ""),
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
        out += ["", f"## {title}", "", f"- method: {eq.method}; regret {eq.regret:.2g}",
                f"- defender: {_mix_text(r.mix(eq))}", f"- attacker: {_mix_text(r.mix(eq, 'attacker'))}",
                f"- values: defender {_num(eq.defender_value)}, attacker {_num(eq.attacker_value)}; expected ASR "
                f"{_pct(r.expected_asr(eq))}; worst-case ASR {_pct(worst)} ({wa})"]
    if r.minimax is not None and r.stackelberg is not None and r.kind == "zero-sum":
        out.append(f"- zero-sum check: minimax value {_num(r.minimax.defender_value, 6)} = Stackelberg value "
                   f"{_num(r.stackelberg.defender_value, 6)}")

    if r.nash is not None:
        nr = r.nash
        out += ["", "## Nash equilibria", "",
                f"- {len(nr.equilibria)} equilibri{'um' if len(nr.equilibria) == 1 else 'a'} by {nr.method} "
                f"({'complete enumeration' if nr.complete else f'{len(nr.labels)} dropped labels'}), each passing "
                f"the regret check (eps {nr.eps:g}); {nr.rejected} candidate(s) failed it; {nr.seconds:.2f} s"]
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
                    "Game value (defender), same quantiles: " + " / ".join(_num(v[k]) for k in v) + ".",
                    "(The worst case is a maximum over noisy columns, so resampling biases it upward.)"]
    if r.notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in r.notes]
    out += ["", "Seconds: " + ", ".join(f"{k} {s:.2f}" for k, s in r.seconds)]
    return "\n".join(out) + "\n"


def report_json_text(report: SolveReport) -> str:
    """``report.to_json()`` as strict JSON text (what ``--json`` prints)."""
    return json.dumps(report.to_json(), indent=2, allow_nan=False)
