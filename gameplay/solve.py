"""``defdrop solve``: from a payoff CSV to a decision (which r' to deploy), with every solver's answer and how
sure we are, as data (:class:`SolveReport`, :class:`Recommendation`, :class:`Note`). The words are analysis's:
``analysis.solve_text`` writes the markdown and the JSON text, ``analysis.solve_report`` the HTML page.

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

import math
import time
from dataclasses import asdict, dataclass, is_dataclass, replace
from pathlib import Path
from typing import Union

import numpy as np

from gameplay.algorithm1 import Algorithm1Table
from gameplay.best_response import BestResponses
from gameplay.equilibrium import Equilibrium
from gameplay.game import Game
from gameplay.minimax import minimax, pure_maximin
from gameplay.nash import NashResult
from gameplay.robustness import Robustness
from gameplay.rules import DEFAULT_MAX_ACCURACY_DROP
from gameplay.table import AttackerInfo, DefenderInfo, PayoffTable, Reference, read_payoff_csv
from gameplay.utility import check_parameters, l2_paid
from payoffs.errors import DefdropError

SOLVERS = ("all", "algorithm1", "minimax", "nash", "stackelberg")
NASH_OPTIONS = {"label_time_limit": 0.25, "time_limit": 2.0}


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Recommendation:
    """The deployed defense and the facts behind the choice (no words: ``analysis.solve_text`` writes them).

    ``mix`` = [(defender strategy, probability)], largest first; ``solver`` the solution concept that chose it;
    its worst-case expected ASR and the attacker achieving it (``per_attacker``: the mix's expected ASR against
    every attacker column); the best single strategy (``fixed``, pure maximin) and Algorithm 1's rate for
    comparison. ``zero_sum``; for a Stackelberg commitment the attacker's best response (``follower``) and its
    ASR; for a general-sum game the maximin security strategy's worst case (``cautious_*``); ``nash_count``.

    What it costs: ``accuracy`` = sum_i p_i a_i, the mix's expected clean accuracy, and ``accuracy_drop`` = sum_i
    p_i (a_max(i) - a_i) from each row's model reference (``accuracy_drop_max``: the largest drop of a row in the
    mix; ``reference_accuracy``: a_max where the mix uses one model, else None). ``accuracy_budget`` is the epsilon
    the game was built with (None: no limit) and ``budget_source`` whether it was ``given``, the ``default``
    (:data:`gameplay.rules.DEFAULT_MAX_ACCURACY_DROP`) or lifted (``none``)."""

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
    zero_sum: bool = True
    follower: str | None = None
    follower_asr: float | None = None
    cautious_worst_asr: float | None = None
    cautious_worst_attacker: str | None = None
    nash_count: int | None = None
    accuracy: float = math.nan
    accuracy_drop: float = math.nan
    accuracy_drop_max: float = math.nan
    reference_accuracy: float | None = None
    accuracy_budget: float | None = None
    budget_source: str = "given"

    @property
    def mixed(self) -> bool:
        return len(self.mix) > 1


@dataclass(frozen=True)
class Note:
    """Something the reader of a decision should know, as a code and its values (``analysis.solve_text`` words it):
    ``reference_fallback`` (model, source), ``l2_paid`` (source), ``algorithm1_not_run``,
    ``algorithm1_no_undefended_row``, ``nash_time_limit`` (timed_out, labels), ``nash_none``, ``removed``
    (labels), ``no_adaptive_attacker``, ``columns_filled`` (columns), ``intervals_unknown`` (cells, accuracies),
    ``robustness_skipped`` (reason)."""

    code: str
    values: tuple[tuple[str, object], ...] = ()

    def get(self, name: str, default: object = None) -> object:
        return dict(self.values).get(name, default)


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
    notes: tuple[Note, ...] = ()
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
            "recommendation": asdict(self.recommendation),
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
            "notes": [{"code": n.code, **dict(n.values)} for n in self.notes], "seconds": dict(self.seconds),
        }
        return _plain(out)


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
DEFAULT = "default"
"""``max_accuracy_drop=DEFAULT``: the paper's budget, :data:`gameplay.rules.DEFAULT_MAX_ACCURACY_DROP`."""
Budget = Union[float, None, str]


def accuracy_budget(max_accuracy_drop: Budget) -> tuple[float | None, str]:
    """(epsilon, where it comes from): :data:`DEFAULT` -> the paper's default (``"default"``), None -> no limit
    (``"none"``, the explicit opt-out), a number -> itself (``"given"``)."""
    if isinstance(max_accuracy_drop, str):
        if max_accuracy_drop != DEFAULT:
            raise DefdropError(f"max accuracy drop {max_accuracy_drop!r} is not a number (or {DEFAULT!r} or None)")
        return DEFAULT_MAX_ACCURACY_DROP, "default"
    if max_accuracy_drop is None:
        return None, "none"
    return float(max_accuracy_drop), "given"


def parse_budget(text: str | None) -> Budget:
    """``--max-accuracy-drop`` as typed: absent -> :data:`DEFAULT`, ``none`` -> None (no limit), else a fraction."""
    if text is None:
        return DEFAULT
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise DefdropError(f"--max-accuracy-drop {text!r} is neither a fraction (e.g. 0.01 for one point) nor "
                           "'none'") from None


def _check_request(max_accuracy_drop: Budget, solver: str, mu: float, lam: float,
                   robustness_samples: int) -> None:
    if solver not in SOLVERS:
        raise DefdropError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    eps, _ = accuracy_budget(max_accuracy_drop)
    check_parameters(eps, mu, lam)
    if robustness_samples < 0:
        raise DefdropError(f"robustness samples {robustness_samples} must be >= 0")
    if solver == "algorithm1" and eps is None:
        raise DefdropError("Algorithm 1 needs the maximum accuracy drop (the paper's epsilon, max_accuracy_drop)")


def solve_payoff_csv(path: str | Path, *, max_accuracy_drop: Budget = DEFAULT, solver: str = "all",
                     mu: float = 0.0, lam: float = 0.0, robustness_samples: int = 200, seed: int = 0,
                     model: str | None = None, game: str | None = None) -> SolveReport:
    """Read a payoff CSV, take one game of it (``model``, ``game``: :func:`gameplay.table.select_game`), build
    the game and run the chosen solvers; every input problem is a ``DefdropError``.

    ``max_accuracy_drop``: epsilon as a fraction; :data:`DEFAULT` (the default) is the paper's 1 point, None
    lifts the limit (the report then still states what the recommendation costs)."""
    _check_request(max_accuracy_drop, solver, mu, lam, robustness_samples)
    return solve_table(read_payoff_csv(path, model=model, game=game), max_accuracy_drop=max_accuracy_drop,
                       solver=solver, mu=mu, lam=lam, robustness_samples=robustness_samples, seed=seed)


def solve_table(table: PayoffTable, *, max_accuracy_drop: Budget = DEFAULT, solver: str = "all", mu: float = 0.0,
                lam: float = 0.0, robustness_samples: int = 200, seed: int = 0) -> SolveReport:
    """:func:`solve_payoff_csv` on a table already read."""
    _check_request(max_accuracy_drop, solver, mu, lam, robustness_samples)
    max_accuracy_drop, budget_source = accuracy_budget(max_accuracy_drop)
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
    can_resample = table.images is not None or table.intervals_known
    if robustness_samples > 0 and run & {"minimax", "algorithm1"} and can_resample:
        rob = timed("robustness", lambda: game.robustness(samples=robustness_samples, seed=seed))

    notes = _notes(table, game, mu, max_accuracy_drop, alg1, nash, solver)
    if robustness_samples > 0 and run & {"minimax", "algorithm1"} and not can_resample:
        notes += (Note("robustness_skipped", (("reason", "intervals_unknown"),)),)
    params = {**dict(table.selection), "max_accuracy_drop": max_accuracy_drop, "accuracy_budget": budget_source,
              "solver": solver, "mu": mu, "lam": lam,
              "robustness_samples": robustness_samples, "seed": seed}
    report = SolveReport(
        source=table.source, params=params, kind=game.kind, defenders=table.defenders, attackers=table.attackers,
        asr=_tt(table.asr), asr_low=_tt(table.asr_low), asr_high=_tt(table.asr_high), references=table.references,
        game_rows=tuple(int(i) for i in game.rows), recommendation=_placeholder(), algorithm1=alg1,
        best_responses=br, minimax=mm, nash=nash, stackelberg=stack, robustness=rob, notes=notes,
        seconds=tuple(timings.items()))
    t0 = time.perf_counter()
    adaptive = _adaptive_effect(report, game, mm or stack)
    recommendation = _recommend(report, game)
    timings["recommendation"] = time.perf_counter() - t0
    return replace(report, recommendation=recommendation, adaptive=adaptive, seconds=tuple(timings.items()))


def _tt(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in a)


def _placeholder() -> Recommendation:
    return Recommendation("", (), math.nan, "", "", math.nan, "", None, None, None, None)


def _notes(table: PayoffTable, game: Game, mu: float, eps: float | None, alg1: Algorithm1Table | None,
           nash: NashResult | None, solver: str) -> tuple[Note, ...]:
    notes = []
    if table.filled:
        notes.append(Note("columns_filled", (("columns", table.filled),)))
    if not table.intervals_known:
        unknown = int((~np.isfinite(table.asr_low)).sum())
        acc_unknown = sum(not math.isfinite(d.accuracy_low) for d in table.defenders)
        notes.append(Note("intervals_unknown", (("cells", unknown), ("accuracies", acc_unknown))))
    for ref in table.references:
        if not ref.source.startswith("undefended"):
            notes.append(Note("reference_fallback", (("model", ref.model_name), ("source", ref.source))))
    if mu:
        notes.append(Note("l2_paid", (("source", l2_paid(table)[1]),)))
    if eps is None and solver in ("all", "algorithm1"):
        notes.append(Note("algorithm1_not_run"))
    if alg1 is not None and alg1.defender is None:
        notes.append(Note("algorithm1_no_undefended_row"))
    if nash is not None:
        if nash.timed_out:
            notes.append(Note("nash_time_limit", (("timed_out", len(nash.timed_out)), ("labels", len(nash.labels)))))
        if not nash.equilibria:
            notes.append(Note("nash_none"))
    if game.removed:
        notes.append(Note("removed", (("labels", tuple(game.removed)),)))
    if not any(a.adaptive for a in table.attackers):
        notes.append(Note("no_adaptive_attacker"))
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


def _recommend(report: SolveReport, game: Game) -> Recommendation:
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
    per_col = eq.x @ asr
    j = int(np.argmax(per_col))
    fi, _ = pure_maximin(game.A)
    fj = int(np.argmax(asr[fi]))
    follower = follower_asr = cautious = cautious_attacker = None
    if name == "stackelberg":
        k = int(np.argmax(eq.y))
        follower, follower_asr = attackers[k], float(per_col[k])
    if not zero_sum and report.minimax is not None:
        cautious, cautious_attacker = report.worst_case(report.minimax)
    a1_label = a1_rate = a1_asr = a1_att = None
    if alg1 is not None:
        a1_label, a1_rate = alg1.defender, alg1.choice.rate
        if alg1.worst is not None:
            a1_asr, a1_att = alg1.worst.asr, alg1.worst.attacker
    rows = [report.defenders[i] for i in report.game_rows]
    x = np.asarray(eq.x, dtype=float)
    used = [k for k in range(len(rows)) if x[k] > 1e-6]
    x_used = x[used] / x[used].sum()
    models = {rows[k].model for k in used}
    ref = report.references[[r.model for r in report.references].index(models.pop())].accuracy \
        if len(models) == 1 else None
    return Recommendation(solver=name, mix=_mix_tuple(labels, eq.x), worst_case_asr=float(per_col[j]),
                          worst_attacker=attackers[j], fixed=labels[fi], fixed_worst_asr=float(asr[fi, fj]),
                          fixed_worst_attacker=attackers[fj], algorithm1=a1_label, algorithm1_rate=a1_rate,
                          algorithm1_worst_asr=a1_asr, algorithm1_worst_attacker=a1_att, zero_sum=zero_sum,
                          follower=follower, follower_asr=follower_asr, cautious_worst_asr=cautious,
                          cautious_worst_attacker=cautious_attacker,
                          nash_count=len(report.nash.equilibria) if report.nash else None,
                          accuracy=float(sum(p * rows[k].accuracy for p, k in zip(x_used, used))),
                          accuracy_drop=float(sum(p * rows[k].accuracy_drop for p, k in zip(x_used, used))),
                          accuracy_drop_max=float(max(rows[k].accuracy_drop for k in used)),
                          reference_accuracy=ref, accuracy_budget=report.params["max_accuracy_drop"],
                          budget_source=report.params["accuracy_budget"])


