"""The paper's tables beside ours: a number is set beside the paper's only where dataset and model match
(issue 18); other rows say "not comparable here" with the reason, and a table with no comparable row says so once."""
from __future__ import annotations

import math

import pandas as pd

from analysis.conclusions import table_agreement
from analysis.formatting import MISSING
from analysis.paper import (
    COMPARED,
    NOT_COMPARABLE,
    NOT_RUN,
    compare_with_paper,
    paper_numbers,
    paper_table_display,
    paper_tables_section,
)
from analysis.report import blocks_to_markdown
from analysis.verdicts import AGREES
from tests.analysis.test_conclusions import cell, frame


def _sap_and_cw(dataset: str, r: float = 0.3, recipe: str | None = None) -> pd.DataFrame:
    """The paper's C&W against none, r' = 0.5 and SAP on one model at r; SAP's ASR 0.2489 (Table 2 says 77.78%)."""
    t = frame(cell("cw[k=0]", "cw", "none", 0.0, 1.0, 0.0, r=r, dataset=dataset, acc=0.99),
              cell("cw[k=0]", "cw", "dropout", 0.5, 0.15, 0.01, r=r, dataset=dataset, acc=0.982),
              cell("cw[k=0]", "cw", "sap", math.nan, 0.2489, 0.01, r=r, dataset=dataset, acc=0.97))
    if recipe is not None:
        t["recipe"] = recipe
    return t


def _rows(comparison: pd.DataFrame, artefact: str, metric: str = "asr") -> pd.DataFrame:
    return comparison[(comparison["artefact"] == artefact) & (comparison["metric"] == metric)]


def test_cifar_paper_row_against_an_mnist_run_is_not_comparable() -> None:
    """Table 2 (SAP on CIFAR-10) once sat beside our mnist-5k SAP cell with "difference -0.5289"."""
    comparison = compare_with_paper(_sap_and_cw("mnist-5k"))
    t2 = _rows(comparison, "table2")
    at_r = t2[t2["train_dropout"] == 0.3].iloc[0]
    assert math.isnan(at_r["difference"]) and math.isnan(at_r["ours"]) and not isinstance(at_r["verdict"], str)
    assert (t2["status"] == NOT_COMPARABLE).all()
    assert set(t2["reason"]) == {"paper: CIFAR-10; this run: mnist-5k"}
    # The page says so once, and prints no difference.
    section = blocks_to_markdown("t", paper_tables_section(comparison))
    table2 = section.split("### Table 2")[1].split("###")[0]
    assert "Not comparable here (paper: CIFAR-10; this run: mnist-5k)." in table2
    assert "pp" not in table2 and "|" not in table2 and "-0.5289" not in section and "-52.9" not in section
    # Table 3 (FGSM on CIFAR-10) likewise: one sentence, not a column of dashes.
    table3 = section.split("### Table 3")[1].split("###")[0]
    assert "Not comparable here (paper: CIFAR-10; this run: mnist-5k)." in table3 and MISSING not in table3


def test_mnist_paper_rows_against_an_mnist_run_are_compared_in_points() -> None:
    comparison = compare_with_paper(_sap_and_cw("mnist-5k"))
    t6 = _rows(comparison, "table6").set_index("test_dropout")
    assert t6.loc[0.5, "status"] == COMPARED and t6.loc[0.5, "difference"] == 0.15 - 0.1389
    assert t6.loc[0.1, "status"] == NOT_RUN and "r' = 0.1 not in this run" in t6.loc[0.1, "reason"]
    shown = paper_table_display(_rows(comparison, "table6")).set_index("test-time defense")
    assert shown.loc["dropout r' = 0.5", "ours − paper"] == "+1.11 pp"
    assert shown.loc["dropout r' = 0.5", "verdict"] == AGREES
    assert shown.loc["dropout r' = 0.5", "paper"] == "13.89%"
    assert shown.loc["dropout r' = 0.5", "ours [95% interval]"] == "15.0% [13.0, 17.0]"
    assert shown.loc["dropout r' = 0.1", "ours [95% interval]"].startswith("not run: r' = 0.1 not in this run")
    assert shown.loc["dropout r' = 0.1", "ours − paper"] == MISSING


def test_a_cifar_run_compares_table2_and_not_the_mnist_tables() -> None:
    comparison = compare_with_paper(_sap_and_cw("cifar10"))
    t2 = _rows(comparison, "table2").set_index("train_dropout")
    assert t2.loc[0.3, "status"] == COMPARED
    assert t2.loc[0.3, "difference"] == 0.2489 - paper_numbers()["tables"]["table2"]["asr"][2]
    assert t2.loc[0.1, "status"] == NOT_RUN and "no model trained at r = 0.1" in t2.loc[0.1, "reason"]
    t6 = _rows(comparison, "table6")
    assert (t6["status"] == NOT_COMPARABLE).all() and set(t6["reason"]) == {"paper: MNIST; this run: cifar10"}
    assert t6["difference"].isna().all()
    # L2 has no interval: compared, but never given a verdict.
    l2 = _rows(comparison, "table2", "l2_mean").set_index("train_dropout").loc[0.3]
    assert l2["status"] == COMPARED and not isinstance(l2["verdict"], str)


def test_a_model_the_paper_did_not_train_is_not_comparable() -> None:
    comparison = compare_with_paper(_sap_and_cw("mnist-5k", recipe="adversarial"))
    t6 = _rows(comparison, "table6")
    assert (t6["status"] == NOT_COMPARABLE).all() and t6["difference"].isna().all()
    assert "adversarial" in t6["reason"].iloc[0]
    # The plain recipe (and tables written before recipes were recorded) are the paper's model.
    assert (_rows(compare_with_paper(_sap_and_cw("mnist-5k", recipe="standard")), "table6")
            .set_index("test_dropout").loc[0.5, "status"]) == COMPARED


def test_table_agreement_judges_only_comparable_rows() -> None:
    found = {f.topic: f for f in table_agreement(compare_with_paper(_sap_and_cw("mnist-5k")))}
    assert found["table2"].verdict == "info" and "not comparable here" in found["table2"].text
    assert "paper: CIFAR-10; this run: mnist-5k" in found["table2"].text
    assert found["table6"].verdict == AGREES and "of 2 ASR values" in found["table6"].text


def test_headline_is_not_compared_on_a_model_the_paper_did_not_train() -> None:
    from analysis.conclusions import headline

    table = _sap_and_cw("mnist-5k", recipe="adversarial")
    h = headline(table)
    assert h.verdict == "info" and "not comparable here" in h.text and "adversarial" in h.text
    assert headline(_sap_and_cw("mnist-5k", recipe="standard")).verdict == AGREES


def test_a_model_without_a_recorded_recipe_is_not_the_papers() -> None:
    """A model factory's model records no recipe (empty in memory, NaN once read back from CSV)."""
    for empty in ("", math.nan):
        t6 = _rows(compare_with_paper(_sap_and_cw("mnist-5k", recipe=empty)), "table6")
        assert (t6["status"] == NOT_COMPARABLE).all() and "unknown training" in t6["reason"].iloc[0]
