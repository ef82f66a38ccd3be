"""The paper's Algorithm 1 (Wang et al., "Defensive Dropout", ICCAD 2018, section 3.4), on a measured grid.

The pseudo-code::

    a <- a_test^max;  r' <- 0
    while a > a_test^max - epsilon:
        r' <- r' + step_size
        generate adversarial examples with strategy pi against F at r';  a <- test accuracy of F at r'
        evaluate the attack success rate of pi against F at r'

The text asks for "the largest test dropout rate r' ... while satisfying the test accuracy requirement", so we
return the last rate *before* the first one that violates ``a > a_max - epsilon`` (read literally the loop ends
holding that violating rate; we take the one before, which is what the text describes). Faithful otherwise:

- the walk goes up the table's measured rates in ascending order (the grid's steps need not be equal) and stops
  at the *first* violation, even if a larger rate would satisfy the constraint again (accuracy is noisy);
- the start is r' = 0 with a = a_max (line 2, no measurement), so if the very first rate violates, r' = 0;
- the test is the paper's strict ``a > a_max - epsilon`` (:func:`gameplay.rules.within_accuracy_limit`, the
  one accuracy-limit rule of defdrop): a drop of exactly epsilon stops the walk;
- the rate depends on accuracy alone, not on the attacker; the attacker strategy only decides the ASR
  reported at that rate. Step 1 ("a proper training dropout rate r in [0.3, 0.7]" with the best test accuracy)
  picks, among several models, the one with the highest undefended accuracy among those whose r is in the
  paper's range (read from ``analysis/paper_numbers.json``, key ``algorithm1.train_dropout_range``). The rule
  can only judge models that have a training rate: a model without one (the user's own network) stays a
  candidate, and among models none of which has r in the range (or none of which has an r at all) step 1 is
  simply the best undefended accuracy. ``Algorithm1Table.selection`` says which rule chose.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Sequence

import numpy as np

from gameplay.rules import within_accuracy_limit

if TYPE_CHECKING:
    from gameplay.table import PayoffTable


@dataclass(frozen=True)
class Algorithm1Choice:
    """Where Algorithm 1 stops on one model's grid of test dropout rates.

    ``index``: position of ``rate`` in the *input* ``rates`` (None when the answer is the starting r' = 0 and the
    grid has no r' = 0 point). ``grid``: the rates in ascending order.
    ``stopped_at``/``stopped_accuracy``: the first rate violating the constraint (None if none did).
    ``trace``: (r', a, within) for every rate the loop evaluated.
    """

    rate: float
    accuracy: float
    reference_accuracy: float
    epsilon: float
    stopped_at: float | None
    stopped_accuracy: float | None
    index: int | None
    grid: tuple[float, ...]
    trace: tuple[tuple[float, float, bool], ...]
    method: str = "Algorithm 1 (Wang et al. 2018, section 3.4)"

    def to_dict(self) -> dict:
        return asdict(self)


def algorithm1(rates: Sequence[float], accuracies: Sequence[float], reference_accuracy: float,
               epsilon: float) -> Algorithm1Choice:
    """Walk the test dropout rates upward from r' = 0 while ``a > reference_accuracy - epsilon``.

    ``rates``/``accuracies``: one model's measured grid (any order; r' = 0, if present, is the start, not a step).
    """
    order = np.argsort(np.asarray(rates, dtype=float), kind="stable")
    grid = [float(rates[k]) for k in order]
    accs = [float(accuracies[k]) for k in order]
    rate, acc, index = 0.0, float(reference_accuracy), None  # lines 2-3
    zero = [k for k, r in enumerate(grid) if r == 0.0]
    if zero:
        index = int(order[zero[0]])  # r' = 0 is on the grid: the answer "no test dropout" is that row
    trace: list[tuple[float, float, bool]] = []
    for k, (r, a) in enumerate(zip(grid, accs)):
        if r == 0.0:
            continue
        within = within_accuracy_limit(reference_accuracy - a, epsilon)
        trace.append((r, a, within))
        if not within:
            return Algorithm1Choice(rate=rate, accuracy=acc, reference_accuracy=float(reference_accuracy),
                                    epsilon=float(epsilon), stopped_at=r, stopped_accuracy=a, index=index,
                                    grid=tuple(grid), trace=tuple(trace))
        rate, acc, index = r, a, int(order[k])
    return Algorithm1Choice(rate=rate, accuracy=acc, reference_accuracy=float(reference_accuracy),
                            epsilon=float(epsilon), stopped_at=None, stopped_accuracy=None, index=index,
                            grid=tuple(grid), trace=tuple(trace))


@dataclass(frozen=True)
class Algorithm1Row:
    """Algorithm 1's answer against one attacker strategy: the rate and the attacker's ASR there (None when
    the answer is r' = 0 and the table has no undefended row to read it from)."""

    attacker: str
    rate: float
    defender: str | None
    asr: float | None
    asr_low: float | None
    asr_high: float | None


@dataclass(frozen=True)
class Algorithm1Table:
    """Algorithm 1 for every attacker strategy, on the model step 1 picks (the best undefended accuracy with
    r in [0.3, 0.7]), and
    the rate it picks on every model (``per_model``: model, train rate r, reference accuracy, choice)."""

    model: str
    train_dropout: float
    choice: Algorithm1Choice
    defender: str | None
    rows: tuple[Algorithm1Row, ...]
    per_model: tuple[tuple[str, float, float, Algorithm1Choice], ...]
    method: str = "Algorithm 1 (Wang et al. 2018, section 3.4)"
    selection: str = ""
    model_label: str = ""

    @property
    def worst(self) -> Algorithm1Row | None:
        """The attacker with the highest ASR at the chosen rate."""
        known = [r for r in self.rows if r.asr is not None]
        return max(known, key=lambda r: r.asr, default=None)

    def for_attacker(self, attacker: str) -> Algorithm1Row:
        return next(r for r in self.rows if r.attacker == attacker)

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def paper_train_range() -> tuple[float, float]:
    """Step 1's range of training dropout rates, [0.3, 0.7] in the paper (a data file, not an analysis import)."""
    numbers = json.loads(resources.files("analysis").joinpath("paper_numbers.json").read_text())
    low, high = numbers["algorithm1"]["train_dropout_range"]
    return float(low), float(high)


def algorithm1_table(table: "PayoffTable", epsilon: float,
                     train_range: tuple[float, float] | None = None) -> Algorithm1Table:
    """Run Algorithm 1 on each model's dropout grid (r' = 0 = the ``none`` row) and read every attacker's ASR
    at the rate chosen on the step-1 model (``train_range``: step 1's range of r, default the paper's). SAP rows
    do not enter it."""
    per_model = []
    chosen_rows: dict[str, int | None] = {}
    for ref in table.references:
        rows = [i for i, d in enumerate(table.defenders) if d.model == ref.model and d.is_rate]
        choice = algorithm1([table.defenders[i].test_dropout for i in rows],
                            [table.defenders[i].accuracy for i in rows], ref.accuracy, epsilon)
        chosen_rows[ref.model] = None if choice.index is None else rows[choice.index]
        per_model.append((ref.model, ref.train_dropout, ref.accuracy, choice))
    # Step 1: the best undefended accuracy among models whose training rate r is in the paper's range or unknown
    # (the rule cannot judge those); among all models where that leaves none. Ties: the first in table order.
    low, high = train_range or paper_train_range()
    candidates, selection = step1_candidates(per_model, (low, high))
    model, train_dropout, _, choice = max(candidates, key=lambda p: p[2])
    row = chosen_rows[model]
    out = []
    for j, att in enumerate(table.attackers):
        if row is None:
            out.append(Algorithm1Row(att.label, choice.rate, None, None, None, None))
        else:
            out.append(Algorithm1Row(att.label, choice.rate, table.defenders[row].label, float(table.asr[row, j]),
                                     float(table.asr_low[row, j]), float(table.asr_high[row, j])))
    return Algorithm1Table(model=model, train_dropout=train_dropout, choice=choice,
                           defender=None if row is None else table.defenders[row].label, rows=tuple(out),
                           per_model=tuple(per_model), selection=selection,
                           model_label=table.reference(model).model_name)


def step1_candidates(per_model: Sequence[tuple[str, float, float, Algorithm1Choice]],
                     train_range: tuple[float, float]) -> tuple[list, str]:
    """Step 1's candidates among ``(model, r, reference accuracy, choice)`` and the rule that chose them."""
    low, high = train_range
    if len(per_model) == 1:
        return list(per_model), "the table's only model"
    known = [p for p in per_model if math.isfinite(p[1])]
    inside = [p for p in known if low <= p[1] <= high]
    unknown = [p for p in per_model if not math.isfinite(p[1])]
    best = "the best undefended accuracy"
    if inside:
        if unknown:
            return inside + unknown, (f"{best} among the models with r in [{low:g}, {high:g}] (the paper's rule) "
                                      "and those without a training rate")
        return inside, f"{best} among the models with r in [{low:g}, {high:g}] (the paper's rule)"
    if not known:
        return list(per_model), f"{best} (no model has a training dropout rate r)"
    return list(per_model), f"{best} (no model has r in [{low:g}, {high:g}])"
