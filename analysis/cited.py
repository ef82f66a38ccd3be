"""The defenses the paper cites, measured: adversarial training and defensive distillation against C&W, with and
without test-time dropout, beside the cited "100%" (paper sections 1, 3.3 and 4.2, citing Carlini & Wagner 2017).

``reproduce`` trains one model per recipe at the headline's training rate r (:class:`CitedSettings` says with
which recipe parameters and epochs), attacks it with the paper's C&W attacker and the adaptive one at the settings'
test rates r', and puts those cells beside the standard model's (same r, same attackers) in one *joint* table: the
defender strategies (recipe, r) x test-time defense. This module turns that table into the section's rows; the
verdicts are :func:`analysis.conclusions.cited_claim` and
:func:`analysis.conclusions.dropout_on_adversarial_training`.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.paper import is_adaptive, paper_numbers
from analysis.verdicts import against_value

CITED_RECIPES = ("adversarial", "distillation")
STANDARD = ("standard", "")


@dataclass(frozen=True)
class CitedSettings:
    """How the cited defenses are trained and met: each recipe's parameters (unset ones take their declared
    defaults, :mod:`payoffs.recipes`), the epochs (None: the profile's), and the test rates r' (0 included)."""

    adversarial: tuple[tuple[str, Any], ...] = ()
    distillation: tuple[tuple[str, Any], ...] = ()
    epochs: int | None = None
    test_rates: tuple[float, ...] = (0.0, 0.5)
    note: str = ""

    def recipes(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        return (("adversarial", dict(self.adversarial)), ("distillation", dict(self.distillation)))


def params_digest(recipe: str, resolved: dict[str, Any]) -> str:
    """A short hash of a recipe and its resolved parameters (names a checkpoint file; the cache keys hash the
    weights and the parameters themselves)."""
    blob = json.dumps({"recipe": recipe, "params": resolved}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def is_standard(recipe: Any) -> bool:
    return recipe is None or (isinstance(recipe, float) and math.isnan(recipe)) or str(recipe) in STANDARD


def attacker_kind(table: pd.DataFrame) -> pd.Series:
    """``paper`` or ``adaptive`` per row (:func:`analysis.paper.is_adaptive`)."""
    return pd.Series(np.where(is_adaptive(table), "adaptive", "paper"), index=table.index)


def section_rows(joint: pd.DataFrame, test_rates: tuple[float, ...]) -> pd.DataFrame:
    """The section's table: per model (standard first, then the recipes), attacker and r' in ``test_rates``: clean
    accuracy and its cost from the standard model's undefended accuracy (same r), ASR with its interval, L2 of the
    successful examples, and for the recipes' r' = 0 rows the cited value with our verdict against it
    (:func:`analysis.verdicts.against_value`; judged for the paper's attacker, C&W as C&W 2017 ran it)."""
    cited = paper_numbers()["cited_defenses"]["asr"]
    rates = [round(float(r), 6) for r in test_rates]
    rows = joint[joint["defense"].isin(["none", "dropout"]) & joint["test_dropout"].round(6).isin(rates)]
    rows = rows.assign(kind=attacker_kind(rows), standard=[is_standard(r) for r in rows["recipe"]])
    base = rows[rows["standard"] & np.isclose(rows["test_dropout"], 0.0)]
    reference = {float(r): float(g["clean_accuracy"].iloc[0]) for r, g in base.groupby("train_dropout")}
    out = []
    order = rows.sort_values(["standard", "recipe", "model_label", "kind", "test_dropout"],
                             ascending=[False, True, True, False, True], kind="stable")
    for _, row in order.iterrows():
        recipe = "standard" if row["standard"] else str(row["recipe"])
        value = cited.get(recipe) if (row["kind"] == "paper" and row["test_dropout"] == 0.0) else None
        ref = reference.get(float(row["train_dropout"]), math.nan)
        out.append({
            "model_label": row["model_label"], "recipe": recipe, "attacker": f"{row['kind']}: {row['attacker']}",
            "test_dropout": float(row["test_dropout"]), "clean_accuracy": float(row["clean_accuracy"]),
            "accuracy_cost": ref - float(row["clean_accuracy"]),
            "asr": float(row["asr"]), "asr_low": float(row["asr_low"]), "asr_high": float(row["asr_high"]),
            "l2_mean": float(row["l2_mean"]), "n_attacks": int(row["n_attacks"]),
            "cited": math.nan if value is None else float(value),
            "verdict": None if value is None else against_value(float(row["asr_low"]), float(row["asr_high"]),
                                                                 float(value)),
        })
    return pd.DataFrame(out)
