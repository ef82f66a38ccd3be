"""The paper's published numbers (analysis/paper_numbers.json) set beside ours from a payoff table."""
from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from analysis.formatting import MISSING, dataset_name, pct_interval, pp, sig
from analysis.verdicts import against_value, level_text
from gameplay import rules

MNIST_DATASETS = {"mnist": "MNIST", "mnist-5k": "mnist-5k (a 5,000-image subset of MNIST)"}
"""Our datasets that are the paper's MNIST (the whole of it, or a subset of its digits)."""


@lru_cache(maxsize=1)
def paper_numbers() -> dict:
    """The transcription of the paper's Tables 2-6, headline figures and protocol, loaded once."""
    return json.loads(resources.files("analysis").joinpath("paper_numbers.json").read_text())


def is_adaptive(table: pd.DataFrame) -> pd.Series:
    """Rows whose attacker goes beyond the paper's (:func:`gameplay.rules.is_adaptive`: EOT > 1, the
    ``expected`` success test, or kappa > 0)."""
    kappa = table["kappa"] if "kappa" in table else 0.0
    return pd.Series(np.asarray(rules.is_adaptive(table["eot"], table["success_test"], kappa), dtype=bool),
                     index=table.index)


def comparable_dataset(paper: str, ours: str) -> bool:
    """Whether our dataset is the paper's: the same name, or an MNIST subset for the paper's MNIST."""
    return ours == paper or (paper == "mnist" and ours in MNIST_DATASETS)


COMPARED, NOT_RUN, NOT_COMPARABLE = "compared", "not run", "not comparable"
"""A paper value's status beside this run: compared (same dataset, the paper's model, the cell ran), not run
(same dataset but the cell, or the model at that r, is not in this run), not comparable (another dataset, or a
model the paper did not train)."""
PAPER_RECIPE = "standard"
"""The paper's models are trained plainly (Table 1's CNN with dropout r, no adversarial training, no distillation)."""


def _recipe_of(rows: pd.DataFrame) -> pd.Series:
    """The training recipe per row: tables written before recipes were recorded (no column) hold the paper's
    checkpoints; an empty value is a model that records none (a model factory's), so not known to be the paper's."""
    if "recipe" not in rows:
        return pd.Series(PAPER_RECIPE, index=rows.index)
    return rows["recipe"].where(rows["recipe"].notna(), "").astype(str)


def recipe_text(rows: pd.DataFrame) -> str:
    """``trained by the adversarial recipe`` / ``of unknown training (no recorded recipe)`` for a reason."""
    other = ", ".join(sorted(set(_recipe_of(rows)) - {""}))
    unknown = (_recipe_of(rows) == "").any()
    parts = ([f"trained by the {other} recipe"] if other else []) + (
        ["of unknown training (no recorded recipe)"] if unknown else [])
    return " or ".join(parts)


def paper_recipe(rows: pd.DataFrame) -> pd.Series:
    """Rows whose model is trained as the paper's are (:data:`PAPER_RECIPE`)."""
    return _recipe_of(rows) == PAPER_RECIPE


def _model_rows(table: pd.DataFrame, spec: dict, train: float) -> tuple[pd.DataFrame, str, str]:
    """The rows of the paper's model for ``spec`` at training rate ``train``: (rows, status, reason).

    The model matches when its dataset is the paper's (:func:`comparable_dataset`), it was trained at r and by
    the paper's recipe; the paper's attacker (:func:`is_adaptive` false) of ``spec``'s attack must have run on it.
    """
    paper_ds = spec["dataset"]
    datasets = sorted({str(d) for d in table["dataset"].dropna()}) if "dataset" in table else []
    if not datasets:
        return table.iloc[:0], NOT_COMPARABLE, f"paper: {dataset_name(paper_ds)}; this table names no dataset"
    same = table[[comparable_dataset(paper_ds, str(d)) for d in table["dataset"]]]
    if same.empty:
        return same, NOT_COMPARABLE, f"paper: {dataset_name(paper_ds)}; this run: {', '.join(datasets)}"
    rates = same["train_dropout"].astype(float) if "train_dropout" in same else pd.Series(np.nan, index=same.index)
    at_r = same[np.isclose(rates, train, rtol=0.0, atol=1e-9)]
    if at_r.empty:
        known = sorted({float(x) for x in rates.dropna()})
        have = f" (this run's models: r = {', '.join(f'{x:g}' for x in known)})" if known else ""
        return at_r, NOT_RUN, f"no model trained at r = {train:g}{have}"
    recipe = _recipe_of(at_r)
    plain = at_r[recipe == PAPER_RECIPE]
    if plain.empty:
        return plain, NOT_COMPARABLE, (f"this run's r = {train:g} model is {recipe_text(at_r)}; the paper's is "
                                       "trained plainly")
    rows = plain[(plain["attack"] == spec["attack"]) & ~is_adaptive(plain)]
    if rows.empty:
        return rows, NOT_RUN, f"no {spec['attack'].upper()} cells of the paper's attacker on the r = {train:g} model"
    return rows, COMPARED, ""


def _match(table: pd.DataFrame, spec: dict, train: float, test: float | None,
           defense: str | None = None) -> tuple[pd.Series | None, str, str]:
    """The cell of the paper's attacker against test rate ``test`` (or SAP) on the paper's model at ``train``."""
    rows, status, reason = _model_rows(table, spec, train)
    if status != COMPARED:
        return None, status, reason
    if defense == "sap":
        rows = rows[rows["defense"] == "sap"]
        missing = "no SAP cell"
    else:
        rows = rows[(rows["defense"] != "sap") & np.isclose(rows["test_dropout"].fillna(-1), test)]
        missing = f"r' = {test:g} not in this run"
    if rows.empty:
        return None, NOT_RUN, f"{missing} on the r = {train:g} model"
    return rows.iloc[0], COMPARED, ""


def compare_with_paper(table: pd.DataFrame) -> pd.DataFrame:
    """One row per published number: artefact, attack, r, r', metric, paper, ours with its interval, verdict.

    Compared only where our model is the paper's: the same dataset (:func:`comparable_dataset`), the same
    training rate r and the paper's training recipe, with the paper's attacker. ``status`` says whether the row
    was compared (:data:`COMPARED`), its cell is not in this run (:data:`NOT_RUN`) or it is not comparable
    (:data:`NOT_COMPARABLE`: another dataset or another kind of model); ``reason`` says why not. Only compared
    rows have ``ours``, ``difference`` and a verdict, so no number is ever set beside one from another dataset.

    ``within_interval`` says whether the paper's value lies in our interval (descriptive only); ``verdict`` is
    :func:`analysis.verdicts.against_value` of our interval against the paper's value (ASR and clean accuracy;
    None for L2, which has no interval). Rates are fractions (the CSV's unit); see :func:`paper_tables_section`
    for the table people read.
    """
    out = []
    dataset = ", ".join(sorted({str(d) for d in table["dataset"].dropna()})) if "dataset" in table else ""
    tables = paper_numbers()["tables"]
    for name in ("table4", "table5", "table6", "table3"):
        spec = tables[name]
        for train, cols in spec["rows"].items():
            for test, value in cols.items():
                found = _match(table, spec, float(train), float(test))
                out.append(_cmp_row(name, spec, float(train), float(test), "asr", value, found, dataset))
        for train, cols in spec.get("clean_accuracy", {}).items():
            for test, value in cols.items():
                found = _match(table, spec, float(train), float(test))
                out.append(_cmp_row(name, spec, float(train), float(test), "clean_accuracy", value, found, dataset))
    spec = tables["table2"]
    for i, train in enumerate(spec["train_dropout"]):
        found = _match(table, spec, train, None, defense="sap")
        for metric, key in (("asr", "asr"), ("clean_accuracy", "clean_accuracy"), ("l2_mean", "l2_mean")):
            out.append(_cmp_row("table2", spec, train, float("nan"), metric, spec[key][i], found, dataset))
    return pd.DataFrame(out)


def _cmp_row(name: str, spec: dict, train: float, test: float, metric: str, paper: float,
             found: tuple[pd.Series | None, str, str], dataset: str) -> dict:
    nan = float("nan")
    row, status, reason = found
    ours = float(row[metric]) if row is not None and metric in row else nan
    low = float(row[f"{metric}_low"]) if row is not None and f"{metric}_low" in row else nan
    high = float(row[f"{metric}_high"]) if row is not None and f"{metric}_high" in row else nan
    known = not (math.isnan(low) or math.isnan(high))
    within = bool(low <= paper <= high) if known else None
    return {"artefact": name, "paper_dataset": spec["dataset"], "our_dataset": dataset, "attack": spec["attack"],
            "train_dropout": train, "test_dropout": test, "metric": metric, "paper": paper, "ours": ours,
            "ours_low": low, "ours_high": high, "difference": ours - paper if not math.isnan(ours) else nan,
            "within_interval": within, "verdict": against_value(low, high, paper) if known else None,
            "status": status, "reason": reason}


# --------------------------------------------------------------------------- the tables people read
TABLE_NAMES = {"table2": "Table 2", "table3": "Table 3", "table4": "Table 4", "table5": "Table 5",
               "table6": "Table 6"}
RATE_METRICS = ("asr", "clean_accuracy")


def published_pct(value: float) -> str:
    """A published rate as the paper prints it (100%, 13.89%): its own digits, not ours."""
    return f"{100 * value:.2f}".rstrip("0").rstrip(".") + "%"


def _setting(row: pd.Series) -> str:
    if row["artefact"] == "table2":
        return "SAP"
    return "none" if row["test_dropout"] == 0 else f"dropout r' = {row['test_dropout']:g}"


def paper_table_display(group: pd.DataFrame) -> pd.DataFrame:
    """One paper table beside ours, as text: rates in percent with our interval, differences in percentage
    points, the verdict; a row not compared says why instead of a number."""
    from analysis.formatting import header, setting

    rows = []
    for _, row in group.iterrows():
        rate = row["metric"] in RATE_METRICS
        compared = row["status"] == COMPARED
        if not compared:
            ours = f"{row['status']}: {row['reason']}"
        elif rate:
            ours = pct_interval(row["ours"], row["ours_low"], row["ours_high"])
        else:
            ours = sig(row["ours"])
        if not compared or math.isnan(row["difference"]):
            diff = MISSING
        else:
            diff = pp(row["difference"]) if rate else sig(row["difference"], signed=True)
        verdict = row["verdict"] if compared and isinstance(row["verdict"], str) else MISSING
        if compared and not rate:
            verdict = "not judged (no interval)"
        rows.append({"r": setting(row["train_dropout"]), "test-time defense": _setting(row),
                     "metric": header(row["metric"]),
                     "paper": published_pct(row["paper"]) if rate else sig(row["paper"]),
                     f"ours [{level_text()} interval]": ours, "ours − paper": diff, "verdict": verdict})
    return pd.DataFrame(rows, dtype=object)


def not_compared_text(group: pd.DataFrame) -> str | None:
    """One sentence for a paper table none of whose rows was compared (instead of a column of dashes), or None
    when some row was."""
    if (group["status"] == COMPARED).any():
        return None
    incomparable = group[group["status"] == NOT_COMPARABLE]
    pick = incomparable if not incomparable.empty else group
    reasons = "; ".join(dict.fromkeys(str(r) for r in pick["reason"]))
    if not incomparable.empty:
        return f"Not comparable here ({reasons})."
    return f"Not run here: {reasons}."


def paper_tables_section(comparison: pd.DataFrame) -> list:
    """The report's section "The paper's tables beside ours": per paper table, its title and note, then either
    the rows beside ours (:func:`paper_table_display`) or one sentence saying why none can be compared."""
    from analysis.verdicts import AGREEMENT_MARGIN

    blocks: list = [
        "## The paper's tables beside ours\n\n"
        f"Rates in percent: `paper` is the published value, `ours` our measurement with its {level_text()} interval, "
        "`ours − paper` in percentage points. A paper value is compared only where this run has the paper's "
        "model: the same dataset (mnist-5k is a subset of the paper's MNIST), the same training dropout rate r, "
        f"the paper's plain training and the paper's attacker. `verdict`: agrees when our interval lies within "
        f"{100 * AGREEMENT_MARGIN:g} pp of the paper's value, disagrees when it lies entirely beyond that, "
        "inconclusive otherwise."]
    for name, group in comparison.groupby("artefact", sort=True):
        spec = paper_numbers()["tables"][name]
        blocks.append(f"### {TABLE_NAMES.get(name, name)}: {spec['title']}"
                      + (f"\n\n{spec['note']}" if "note" in spec else ""))
        text = not_compared_text(group)
        blocks.append(text if text is not None else paper_table_display(group))
    return blocks
