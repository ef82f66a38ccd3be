"""Tables of user models (no training rate r, named by their label): the reader, Algorithm 1's step 1 over any
set of models, and the solve report's words."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from analysis.solve_text import solve_markdown
from gameplay.algorithm1 import algorithm1_table
from gameplay.solve import solve_payoff_csv
from gameplay.synthetic import synthetic_payoff_table
from gameplay.table import payoff_table_from_frame
from payoffs.errors import DefdropError


def _user_table(label: str = "resnet8", seed: int = 5, boost: float = 0.0) -> pd.DataFrame:
    """A synthetic one-model table relabelled as a user model: NaN training rate, its own label and hash."""
    df = synthetic_payoff_table(6, 3, seed=seed)
    df["train_dropout"] = np.nan
    df["model_label"] = label
    df["model"] = f"{label}-hash-0123456789"
    for col in ("clean_accuracy", "clean_accuracy_low", "clean_accuracy_high"):
        df[col] = (df[col] + boost).clip(upper=1.0)
    return df


def _paper_models(*rates: float) -> pd.DataFrame:
    df = synthetic_payoff_table(6, 3, seed=5, models=rates)
    df["model_label"] = [f"r={r:g}" for r in df["train_dropout"]]
    return df


def test_reader_takes_a_table_without_training_rate() -> None:
    table = payoff_table_from_frame(_user_table())
    assert all(math.isnan(d.train_dropout) for d in table.defenders)
    assert {d.model_name for d in table.defenders} == {"resnet8"}
    assert table.references[0].model_name == "resnet8"


@pytest.mark.parametrize("value", [np.inf, -0.1, 1.0])
def test_reader_refuses_a_training_rate_that_is_no_rate(value: float) -> None:
    df = _user_table()
    df.loc[2, "train_dropout"] = value
    with pytest.raises(DefdropError, match=r"train_dropout .* is not a rate in \[0, 1\)"):
        payoff_table_from_frame(df)


def test_rows_of_several_models_are_named_label_slash_defender() -> None:
    """Two tables concatenated (each with its own defender ids): rows are "model label / defender", the model named
    by its label, also for models without r."""
    df = pd.concat([_user_table("resnet8"), _user_table("vgg", seed=6)], ignore_index=True)
    table = payoff_table_from_frame(df)
    assert {label.split("/")[0] for label in table.defender_labels} == {"resnet8", "vgg"}
    assert "resnet8/none" in table.defender_labels and not any("nan" in lb for lb in table.defender_labels)


def test_step_one_without_training_rates_is_the_best_undefended_accuracy() -> None:
    df = pd.concat([_user_table("resnet8"), _user_table("vgg", seed=6, boost=0.004)], ignore_index=True)
    table = payoff_table_from_frame(df)
    best = max(table.references, key=lambda r: r.accuracy)
    a1 = algorithm1_table(table, 0.02)
    assert a1.model == best.model and a1.model_label == best.model_name
    assert "no model has a training dropout rate" in a1.selection


def test_step_one_over_paper_and_user_models() -> None:
    """The paper's rule judges the models that have a rate: r = 0.9 is out; a user model without r stays a
    candidate and wins on accuracy; without it, the best model in [0.3, 0.7] wins."""
    paper = _paper_models(0.5, 0.9)
    paper.loc[paper["train_dropout"] == 0.9, ["clean_accuracy", "clean_accuracy_low", "clean_accuracy_high"]] += 0.01
    user = _user_table("resnet8", boost=0.02)
    both = payoff_table_from_frame(pd.concat([paper, user], ignore_index=True))
    a1 = algorithm1_table(both, 0.02)
    assert a1.model_label == "resnet8" and "and those without a training rate" in a1.selection
    weak = payoff_table_from_frame(pd.concat([paper, _user_table("resnet8", boost=-0.05)], ignore_index=True))
    assert algorithm1_table(weak, 0.02).model_label == "r=0.5"
    assert algorithm1_table(payoff_table_from_frame(paper), 0.02).train_dropout == 0.5


def test_solve_report_reads_naturally_without_r(write_csv) -> None:
    path = write_csv(pd.concat([_user_table("resnet8"), _user_table("vgg", seed=6, boost=0.004)],
                               ignore_index=True))
    text = solve_markdown(solve_payoff_csv(path, max_accuracy_drop=0.02, robustness_samples=10))
    assert "Reference (undefended) accuracy of model resnet8 (weights resnet8-hash" in text
    assert "Model vgg (undefended accuracy a_max" in text and "Other models: resnet8: r' = " in text
    assert "step 1's choice: the best undefended accuracy (no model has a training dropout rate r)" in text
    assert re.search(r"\br ?= ?", text) is None
    assert re.search(r"\bnan\b", text, re.IGNORECASE) is None


def test_solve_report_of_paper_models_keeps_their_rates(write_csv) -> None:
    text = solve_markdown(solve_payoff_csv(write_csv(_paper_models(0.3, 0.5)), max_accuracy_drop=0.02,
                            robustness_samples=0))
    assert "accuracy of model r=0.3 (weights" in text and "accuracy of model r=0.5 (weights" in text
    assert "the best undefended accuracy among the models with r in [0.3, 0.7] (the paper's rule)" in text
