"""`defdrop reproduce` end to end on the seconds-long `smoke` profile: report renders offline, the paper's
numbers sit beside ours, and the conclusions follow the numbers (doctored tables change them)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.conclusions import adaptive_effect, headline, summary_line, write_conclusions
from analysis.paper import compare_with_paper, paper_numbers
from analysis.reproduce import PROFILES
from cli import app
from tests.browser import chromium_or_skip, render_in_chromium


@pytest.fixture(scope="module")
def smoke_run(small_checkpoint, adversarial_small, distilled_small, tmp_path_factory) -> Path:
    from analysis.reproduce import recipe_configs, recipe_model_path
    from payoffs.checkpoint import save_checkpoint
    from payoffs.training import checkpoint_meta

    out = tmp_path_factory.mktemp("reproduce")
    models = out / "models"
    models.mkdir()
    p = PROFILES["smoke"]
    # The session's small model is exactly what the smoke profile would train (mnist-5k, r = 0.3, 3 epochs, seed 0),
    # and so are its PGD-trained and distilled models (the cited defenses' stage).
    shutil.copy(small_checkpoint, models / f"mnist-5k-r0.3-e{p.epochs}-s0.pt")
    for config, trained in zip(recipe_configs(p, 0), (adversarial_small, distilled_small)):
        assert (trained.recipe, trained.recipe_params, trained.epochs) == (
            config.recipe, config.resolved_recipe_params(), config.epochs)
        save_checkpoint(recipe_model_path(out, "mnist-5k", config.train_dropout, config), trained.model,
                        checkpoint_meta("mnist-5k", config, trained))
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["reproduce", "--profile", "smoke", "--out", str(out),
                                                            "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    # Not a terminal: one log line per finished job (3 clean accuracies + 1 model x 3 defenders x 4 attackers), then
    # the cited defenses' (2 models x 2 rates: 4 clean accuracies and 8 C&W cells), each kind counted on its own.
    lines = [line for line in result.output.splitlines() if line.startswith("[")]
    assert len(lines) == 27 and lines[2].startswith("[3/3] clean-accuracy cell") and lines[14].startswith("[12/12] ")
    assert lines[18].startswith("[4/4] clean-accuracy cell") and lines[-1].startswith("[8/8] attack cell")
    assert "to run: 12 attack cells, 3 clean-accuracy cells" in result.output
    assert any(line.startswith("[") and " cell cw" in line and "vs dropout" in line and "ASR" in line
               for line in lines), lines
    return out


def test_report_files_and_tables(smoke_run: Path) -> None:
    for name in ("report.html", "report.md", "run.json", "tables/payoff.csv", "tables/paper_vs_ours.csv",
                 "tables/gradvar.csv"):
        assert (smoke_run / name).is_file(), name
    md = (smoke_run / "report.md").read_text()
    assert "## Conclusions" in md and "Table 6" in md and "Figure 4" in md and "Algorithm 1" in md
    assert "`mnist-5k`" in md and "`smoke`" in md and "this invocation took" in md
    assert "N = 1 images x 9 targets = 9 attacks, M = 3" in md
    assert "- machine: " in md and "device `cpu`, --jobs 1, --batch-size 900" in md
    comparison = pd.read_csv(smoke_run / "tables" / "paper_vs_ours.csv")
    t6 = comparison[(comparison["artefact"] == "table6") & (comparison["test_dropout"] == 0.5)].iloc[0]
    assert t6["paper"] == pytest.approx(0.1389) and not np.isnan(t6["ours"])
    # The paper's value is printed in the markdown table beside ours, as the paper prints it.
    assert "| 13.89% |" in md
    # The CIFAR-10 tables are not set beside this mnist-5k run: one sentence each, no column of dashes.
    assert md.count("Not comparable here (paper: CIFAR-10; this run: mnist-5k).") == 2
    t2 = comparison[comparison["artefact"] == "table2"]
    assert t2["difference"].isna().all() and (t2["status"] == "not comparable").all()
    # Every table a person reads: no None/True/False/NaN, no scientific notation, no raw column names.
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert rows and not any(re.search(r"\b(None|True|False|nan|NaN)\b|\d[eE][+-]?\d", line) for line in rows)
    headers = [line for line, rule in zip(rows, rows[1:]) if rule.startswith("|---")]
    assert not any(re.search(r"\b(asr|asr_low|l2_mean|clean_accuracy|var_all|kurt_chosen|test_dropout)\b", h)
                   for h in headers), headers


def test_report_renders_in_chromium(smoke_run: Path) -> None:
    chromium = chromium_or_skip()
    result = render_in_chromium(smoke_run / "report.html", chromium=chromium)
    assert result.plotly_loaded and result.errors == (), result.errors
    assert result.external_requests == ()
    assert result.plot_count >= 4 and result.rendered_count == result.plot_count


def test_rerun_is_cheap_and_identical(smoke_run: Path) -> None:
    before = pd.read_csv(smoke_run / "tables" / "payoff.csv")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["reproduce", "--profile", "smoke", "--out",
                                                            str(smoke_run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    after = pd.read_csv(smoke_run / "tables" / "payoff.csv")
    pd.testing.assert_frame_equal(before.drop(columns="seconds"), after.drop(columns="seconds"))
    assert (before["seconds"] == after["seconds"]).all(), "cells came from the cache"


def _doctored(table: pd.DataFrame, attack: str, r_test: float, adaptive: bool, asr: float) -> pd.DataFrame:
    """The cells set to ``asr`` exactly (zero-width interval, standard error 0)."""
    from analysis.paper import is_adaptive

    t = table.copy()
    mask = (t["attack"] == attack) & np.isclose(t["test_dropout"].fillna(-1), r_test) & (is_adaptive(t) == adaptive)
    t.loc[mask, ["asr", "asr_low", "asr_high"]] = asr
    t.loc[mask, "asr_std_error"] = 0.0
    return t


def test_conclusions_follow_the_numbers(smoke_run: Path) -> None:
    table = pd.read_csv(smoke_run / "tables" / "payoff.csv")
    # Make the headline match the paper exactly, then miss it by 40 points.
    match = _doctored(_doctored(table, "cw", 0.0, False, 1.0), "cw", 0.5, False, 0.1389)
    miss = _doctored(match, "cw", 0.5, False, 0.5389)
    assert headline(match).verdict == "agrees"
    assert headline(miss).verdict == "disagrees" and "+40.0 pp" in headline(miss).text
    # The adaptive attacker: harmless in one table, devastating in the other.
    weak = _doctored(_doctored(match, "cw", 0.5, True, 0.14), "fgsm", 0.5, True, 0.3)
    weak = _doctored(weak, "fgsm", 0.5, False, 0.3)
    strong = _doctored(weak, "cw", 0.5, True, 0.95)
    weak_f = [f for f in adaptive_effect(weak) if "cw" in f.topic.lower()]
    strong_f = [f for f in adaptive_effect(strong) if "cw" in f.topic.lower()]
    assert weak_f and all(f.verdict == "agrees" and "holds up" in f.text for f in weak_f)
    assert strong_f and all(f.verdict == "disagrees" and "does not survive" in f.text for f in strong_f)
    s_weak = summary_line(write_conclusions(weak, compare_with_paper(weak)))
    s_strong = summary_line(write_conclusions(strong, compare_with_paper(strong)))
    assert s_weak != s_strong and "does not survive in 1" in s_strong


def test_algorithm1_stage_is_the_librarys(smoke_run: Path) -> None:
    """Stage 4a's table is gameplay's algorithm1_table on the model's in-memory table, attacker by attacker."""
    from analysis.reproduce import algorithm1_stage, model_tables
    from gameplay.algorithm1 import algorithm1_table

    table = pd.read_csv(smoke_run / "tables" / "payoff.csv")
    p = PROFILES["smoke"]
    stage = algorithm1_stage(table, p)
    lib = algorithm1_table(model_tables(table)[0.3], p.max_accuracy_drop)
    assert list(stage["attacker"]) == [r.attacker for r in lib.rows]
    assert list(stage["asr"]) == [r.asr for r in lib.rows]
    assert (stage["chosen_test_dropout"] == lib.choice.rate).all()
    assert (stage["reference_accuracy"] == lib.choice.reference_accuracy).all()


def test_paper_numbers_transcribed_once() -> None:
    numbers = paper_numbers()
    assert numbers["tables"]["table6"]["rows"]["0.3"]["0.5"] == 0.1389
    assert numbers["tables"]["table5"]["rows"]["0.7"]["0.0"] == 0.9067
    assert numbers["tables"]["table2"]["asr"][2] == 0.7778
    # SAP's ASR under the paper's 4% accuracy limit, not Table 2's lowest (54.44%).
    assert numbers["cifar_headline"]["sap_asr_within_accuracy_limit"] == 0.7778
    assert numbers["cifar_headline"]["sap_accuracy_limit"] == 0.04 and "sap_best_asr" not in numbers["cifar_headline"]
    assert numbers["algorithm1"]["train_dropout_range"] == [0.3, 0.7]
    assert numbers["protocol"]["fgsm_eps"] == 0.25
    assert (numbers["protocol"]["cw_search_steps"], numbers["protocol"]["cw_iterations"]) == (10, 100)
    assert numbers["tables"]["table3"]["clean_accuracy"]["0.5"]["0.3"] == 0.7789
    # The code reads them: the profiles' defaults are the paper's.
    from analysis.reproduce import Profile, paper_attacker
    from gameplay.algorithm1 import paper_train_range

    q = PROFILES["quick"]
    assert (q.cw_search_steps, q.cw_iterations, q.gradvar_samples, q.gradvar_dims) == (10, 100, 50, 5)
    assert q.max_accuracy_drop == numbers["mnist_accuracy_limit"]["max_accuracy_drop"]
    assert paper_attacker("fgsm", q).param("eps", 0.25) == 0.25  # the default, so the id stays "fgsm"
    from dataclasses import replace

    assert paper_attacker("fgsm", replace(q, fgsm_eps=0.3)).param("eps") == 0.3
    assert paper_train_range() == (0.3, 0.7)
    assert Profile.__dataclass_fields__["gradvar_test_rates"].default == (0.1, 0.3, 0.5, 0.7, 0.9)


def test_bad_profile_is_one_line() -> None:
    result = CliRunner().invoke(app, ["reproduce", "--profile", "huge"])
    assert result.exit_code == 2 and "unknown profile 'huge'" in result.output


def test_stages_use_the_per_image_data(smoke_run: Path, tmp_path: Path) -> None:
    """With a per-image sidecar (here made up to match the table: every image at the cell's ASR), the games are
    solved with paired robustness draws, each game CSV gets its own sidecar, and comparisons say they are paired."""
    from analysis.conclusions import write_conclusions
    from analysis.reproduce import solve_stage
    from gameplay.images import ImageData, read_image_data, sidecar_path

    table = pd.read_csv(smoke_run / "tables" / "payoff.csv")
    table["accuracy_key"] = "acc-" + table["defender"]
    n = 4
    acc = table.drop_duplicates("accuracy_key")
    images = ImageData.from_arrays(np.array(table["key"]), np.tile(np.arange(n), (len(table), 1)),
                                   np.repeat(table["asr"].to_numpy(float)[:, None], n, axis=1),
                                   np.array(acc["accuracy_key"]),
                                   np.repeat(acc["clean_accuracy"].to_numpy(float)[:, None], 50, axis=1))
    answers = solve_stage(table, tmp_path, PROFILES["smoke"], 0, images)
    assert answers and all(a["report"].robustness.paired for a in answers)
    for a in answers:
        side = read_image_data(sidecar_path(a["csv"]))
        assert set(side.cell_key) == set(pd.read_csv(a["csv"])["key"])
    findings = write_conclusions(table, compare_with_paper(table), images=images)
    paired = [f for f in findings if f.topic.startswith(("adaptive-", "sap-"))]
    assert paired and all("paired over images" in f.text for f in paired)
    assert not any("taken as independent" in f.text for f in paired)


def test_report_pages_share_one_plotly_js_and_md_shows_pictures(smoke_run: Path) -> None:
    """One plotly.min.js for the run's pages (not 4.8 MB per page); report.md has the figures as PNGs where static
    export works here, else says once per figure why not."""
    import re

    from analysis.static import static_export_unavailable

    library = smoke_run / "plotly.min.js"
    assert library.stat().st_size > 1_000_000
    pages = [smoke_run / "report.html"] + ([smoke_run / "audit.html"] if (smoke_run / "audit.html").exists() else [])
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert 'src="plotly.min.js"' in text and "plotly.js v" not in text, page
        assert page.stat().st_size < library.stat().st_size / 4, page
    md = (smoke_run / "report.md").read_text()
    figures = (smoke_run / "report.html").read_text(encoding="utf-8").count("Plotly.newPlot(")
    why = static_export_unavailable()
    if why is None:
        links = re.findall(r"!\[[^\]]*\]\((report-figures/figure-\d+\.png)\)", md)
        assert len(links) == figures and "Interactive figure" not in md
        assert all((smoke_run / link).is_file() for link in links)
    else:
        assert md.count(f"(no PNG: {why})") == figures


def test_cited_defenses_section(smoke_run: Path) -> None:
    """The cited defenses' stage: both recipe models beside the standard one in tables/cited.csv, the section in
    the report with the cited 100% beside our r' = 0 rows, and its findings among the conclusions."""
    joint = pd.read_csv(smoke_run / "tables" / "cited.csv")
    assert set(joint["recipe"]) == {"standard", "adversarial", "distillation"}
    recipes = joint[joint["recipe"] != "standard"]
    assert len(recipes) == 2 * 2 * 2 and set(recipes["test_dropout"]) == {0.0, 0.5}
    assert {"adv-pgd[eps=0.3,a=0.2,n=2] r=0.3/none", "distill[T=100] r=0.3/dropout[r'=0.5]"} <= set(joint["defender"])
    assert (smoke_run / "tables" / "cited.images.npz").is_file()
    md = (smoke_run / "report.md").read_text()
    section = md[md.index("## The cited defenses, measured"):md.index("## The payoff table")]
    assert "totally vulnerable" in section and "arXiv:1608.04644" in section and "a smoke test" in section
    assert "Over the joint space" in section
    conclusions = md[md.index("## Conclusions"):]
    assert "Cited: C&W against adversarial training (adv-pgd[eps=0.3,a=0.2,n=2] r=0.3) succeeds 100%" in conclusions
    assert "Test-time dropout on adversarial training" in conclusions
    import json

    findings = json.loads((smoke_run / "run.json").read_text())["findings"]
    cited = [f for f in findings if f["topic"].startswith(("cited-", "combo-"))]
    assert len(cited) == 2 + 2 and all(f["verdict"] in ("agrees", "disagrees", "inconclusive") for f in cited)
