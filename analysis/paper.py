"""The paper's published numbers (analysis/paper_numbers.json) set beside ours from a payoff table."""
from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from analysis.verdicts import against_value
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


def _match(table: pd.DataFrame, attack: str, train: float, test: float | None,
           defense: str | None = None) -> pd.Series | None:
    rows = table[(table["attack"] == attack) & ~is_adaptive(table) & np.isclose(table["train_dropout"], train)]
    if defense == "sap":
        rows = rows[rows["defense"] == "sap"]
    else:
        rows = rows[(rows["defense"] != "sap") & np.isclose(rows["test_dropout"].fillna(-1), test)]
    return None if rows.empty else rows.iloc[0]


def compare_with_paper(table: pd.DataFrame) -> pd.DataFrame:
    """One row per published number: artefact, attack, r, r', metric, paper, ours with its interval, verdict.

    ``within_interval`` says whether the paper's value lies in our interval (descriptive only); ``verdict`` is
    :func:`analysis.verdicts.against_value` of our interval against the paper's value (ASR and clean accuracy;
    None for L2, which has no interval). Rows we did not run (that r or r' absent from the table) have NaN for ours.
    """
    out = []
    dataset = str(table["dataset"].iloc[0]) if "dataset" in table and len(table) else "?"
    tables = paper_numbers()["tables"]
    for name in ("table4", "table5", "table6", "table3"):
        spec = tables[name]
        for train, cols in spec["rows"].items():
            for test, value in cols.items():
                row = _match(table, spec["attack"], float(train), float(test))
                out.append(_cmp_row(name, spec, float(train), float(test), "asr", value, row, dataset))
        for train, cols in spec.get("clean_accuracy", {}).items():
            for test, value in cols.items():
                row = _match(table, spec["attack"], float(train), float(test))
                out.append(_cmp_row(name, spec, float(train), float(test), "clean_accuracy", value, row, dataset))
    spec = tables["table2"]
    for i, train in enumerate(spec["train_dropout"]):
        row = _match(table, "cw", train, None, defense="sap")
        for metric, key in (("asr", "asr"), ("clean_accuracy", "clean_accuracy"), ("l2_mean", "l2_mean")):
            out.append(_cmp_row("table2", spec, train, float("nan"), metric, spec[key][i], row, dataset))
    return pd.DataFrame(out)


def _cmp_row(name: str, spec: dict, train: float, test: float, metric: str, paper: float,
             row: pd.Series | None, dataset: str) -> dict:
    nan = float("nan")
    ours = float(row[metric]) if row is not None else nan
    low = float(row[f"{metric}_low"]) if row is not None and f"{metric}_low" in row else nan
    high = float(row[f"{metric}_high"]) if row is not None and f"{metric}_high" in row else nan
    known = not (math.isnan(low) or math.isnan(high))
    within = bool(low <= paper <= high) if known else None
    return {"artefact": name, "paper_dataset": spec["dataset"], "our_dataset": dataset, "attack": spec["attack"],
            "train_dropout": train, "test_dropout": test, "metric": metric, "paper": paper, "ours": ours,
            "ours_low": low, "ours_high": high, "difference": ours - paper if not math.isnan(ours) else nan,
            "within_interval": within, "verdict": against_value(low, high, paper) if known else None}
