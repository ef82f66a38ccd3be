"""`solve` reads every payoff table we write: reproduce's multi-model tables/payoff.csv (one game picked with
--model/--game, an error listing the choices otherwise) and a minimal table of four columns (issue 18, item 2)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from analysis.solve_text import solve_markdown
from gameplay.solve import solve_payoff_csv
from gameplay.table import game_choices, read_payoff_csv
from payoffs.errors import DefdropError

DEFENDERS = [("none", "none", 0.0), ("dropout[r'=0.5]", "dropout", 0.5), ("dropout[r'=0.9]", "dropout", 0.9)]
# (attacker id, attack, eot, success test, kappa)
CW = [("cw[k=0]", "cw", 1, "single", 0.0), ("cw[k=5,eot=4,exp]", "cw", 4, "expected", 5.0)]
FGSM_JSMA = [("fgsm", "fgsm", 1, "single", math.nan), ("jsma", "jsma", 1, "single", math.nan),
             ("fgsm[eot=4,exp]", "fgsm", 4, "expected", math.nan), ("jsma[eot=4,exp]", "jsma", 4, "expected", math.nan)]


def model_rows(r: float, attackers, accuracy=(0.99, 0.985, 0.9)) -> list[dict]:
    """One model's cells, as reproduce writes them: ASR falls with r', adaptive attackers lose less."""
    rows = []
    for (d_id, defense, rate), acc in zip(DEFENDERS, accuracy):
        for k, (a_id, attack, eot, test, kappa) in enumerate(attackers):
            asr = max(0.0, 1.0 - rate * (0.6 if eot > 1 else 1.0) - 0.05 * k)
            rows.append({"attacker": a_id, "attack": attack, "kappa": kappa, "eot": eot, "success_test": test,
                         "defender": d_id, "defense": defense, "train_dropout": r, "test_dropout": rate,
                         "model": f"hash{r:g}".ljust(16, "0"), "model_label": f"r={r:g}", "asr": asr,
                         "asr_low": max(0.0, asr - 0.05), "asr_high": min(1.0, asr + 0.05), "l2_mean": 2.0,
                         "clean_accuracy": acc, "clean_accuracy_low": acc - 0.005,
                         "clean_accuracy_high": acc + 0.005})
    return rows


@pytest.fixture
def quick_payoff(write_csv):
    """reproduce's quick profile: C&W against r = 0.3, FGSM and JSMA against r = 0.7 (18 of 36 cells)."""
    return write_csv(pd.DataFrame(model_rows(0.3, CW) + model_rows(0.7, FGSM_JSMA)))


def test_multi_model_table_without_model_lists_the_choices(quick_payoff):
    with pytest.raises(DefdropError) as err:
        read_payoff_csv(quick_payoff)
    message = str(err.value)
    assert "\n" not in message and "holds several games (18 cells, not 6 defenders x 6 attackers = 36)" in message
    for choice in ("--model r=0.3 --game cw-eot", "--model r=0.7 --game fgsm+jsma-paper",
                   "--model r=0.7 --game fgsm+jsma-eot"):
        assert choice in message


def test_the_error_points_at_the_game_tables_beside_it(quick_payoff):
    (quick_payoff.parent / "game-r0.3-cw-eot.csv").write_text("x\n")
    with pytest.raises(DefdropError, match=r"game tables written beside it: .*game-\*\.csv"):
        read_payoff_csv(quick_payoff)


def test_model_and_game_select_one_game(quick_payoff):
    table = read_payoff_csv(quick_payoff, model="r=0.3")
    assert table.attacker_labels == ("cw[k=0]", "cw[k=5,eot=4,exp]") and table.shape == (3, 2)
    assert table.selection == (("model", "r=0.3"),)
    paper = read_payoff_csv(quick_payoff, model="r=0.7", game="fgsm+jsma-paper")
    assert paper.attacker_labels == ("fgsm", "jsma") and not any(a.adaptive for a in paper.attackers)
    eot = read_payoff_csv(quick_payoff, model="r=0.7", game="jsma+fgsm-eot")  # any order
    assert len(eot.attackers) == 4
    assert read_payoff_csv(quick_payoff, model="hash0.7", game="paper").attacker_labels == ("fgsm", "jsma")


def test_same_game_as_reproduces_split_table(quick_payoff, write_csv):
    """--model r=0.3 --game cw-eot solves exactly the game reproduce writes as game-r0.3-cw-eot.csv."""
    full = pd.read_csv(quick_payoff)
    split = write_csv(full[full["train_dropout"] == 0.3], "game-r0.3-cw-eot.csv")
    a = solve_payoff_csv(quick_payoff, model="r=0.3", game="cw-eot", robustness_samples=0)
    b = solve_payoff_csv(split, robustness_samples=0)
    assert a.recommendation == b.recommendation and a.asr == b.asr
    assert solve_markdown(a).startswith(f"# defdrop solve: {quick_payoff} (model r=0.3, game cw-eot)")


@pytest.mark.parametrize("kwargs, expected", [
    ({"model": "r=0.5"}, "has no model 'r=0.5'; its models: r=0.3, r=0.7"),
    ({"model": "r=0.7", "game": "cw-eot"}, "--model r=0.7 --game fgsm+jsma-paper"),
])
def test_unknown_model_or_game_lists_the_choices(quick_payoff, kwargs, expected):
    with pytest.raises(DefdropError) as err:
        read_payoff_csv(quick_payoff, **kwargs)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_game_choices_of_a_single_game_table(small_table, write_csv):
    """A table from `defdrop payoff` (every attacker against every defender) is one game: no choice needed; its
    attacks form one set, named in table order."""
    assert read_payoff_csv(write_csv(small_table)).shape == (8, 6)
    assert [g for _, g in game_choices(small_table)] == ["cw+pgd+fgsm-paper", "cw+pgd+fgsm-eot"]


def test_cli_multi_model_table(quick_payoff):
    runner = CliRunner()
    bare = runner.invoke(cli.app, ["solve", str(quick_payoff), "--robustness-samples", "0"])
    assert bare.exit_code != 0 and len(bare.output.strip().splitlines()) == 1
    assert "--model r=0.3 --game cw-eot" in bare.output
    picked = runner.invoke(cli.app, ["solve", str(quick_payoff), "--model", "r=0.7", "--game", "fgsm+jsma-eot",
                                     "--robustness-samples", "0", "--json"])
    assert picked.exit_code == 0, picked.output
    data = json.loads(picked.stdout)
    assert data["params"]["model"] == "r=0.7" and data["params"]["game"] == "fgsm+jsma-eot"
    assert len(data["game"]["attackers"]) == 4


# --------------------------------------------------------------------------- the minimal table
MINIMAL = pd.DataFrame(
    [{"attacker": a, "defender": d, "asr": asr, "clean_accuracy": acc}
     for d, acc, row in (("none", 0.99, (1.0, 1.0)), ("dropout[r'=0.3]", 0.985, (0.2, 0.6)),
                         ("dropout[r'=0.5]", 0.984, (0.6, 0.2)), ("dropout[r'=0.9]", 0.60, (0.0, 0.0)))
     for a, asr in zip(("cw[k=0]", "cw[k=0,eot=8,exp]"), row)])


def test_minimal_table_reads_strategies_from_their_ids(write_csv):
    table = read_payoff_csv(write_csv(MINIMAL))
    assert set(table.filled) >= {"attack", "eot", "success_test", "defense", "test_dropout", "model", "asr_low"}
    assert [a.adaptive for a in table.attackers] == [False, True] and table.attackers[1].eot == 8
    assert [d.test_dropout for d in table.defenders] == [0.0, 0.3, 0.5, 0.9]
    assert table.references[0].accuracy == 0.99 and table.references[0].source.startswith("undefended")
    assert not table.intervals_known and math.isnan(table.asr_low[0, 0])


def test_minimal_table_solves_with_intervals_unknown(write_csv):
    report = solve_payoff_csv(write_csv(MINIMAL), robustness_samples=50)
    rec = report.recommendation
    assert dict(rec.mix) == pytest.approx({"dropout[r'=0.3]": 0.5, "dropout[r'=0.5]": 0.5})
    assert report.robustness is None  # nothing to resample: skipped, not invented
    codes = [n.code for n in report.notes]
    assert {"columns_filled", "intervals_unknown", "robustness_skipped"} <= set(codes)
    md = solve_markdown(report)
    assert "robustness: skipped" in md and "intervals are unknown" in md
    assert "nan" not in md.lower().replace("nanosecond", "")


def test_minimal_table_missing_a_column_is_one_line(write_csv):
    result = CliRunner().invoke(cli.app, ["solve", str(write_csv(MINIMAL.drop(columns=["clean_accuracy"])))])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    assert "missing column(s) clean_accuracy (needs at least attacker, defender, asr, clean_accuracy" in result.output


def test_half_an_interval_is_refused(write_csv):
    with pytest.raises(DefdropError, match="missing column.s. asr_high"):
        read_payoff_csv(write_csv(MINIMAL.assign(asr_low=0.0)))
