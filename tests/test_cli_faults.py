"""The CLI under faults: outputs checked before work, file-system failures as one line, messages as plain text."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from tests.fs_faults import tiny_filesystem, unwritable_dir

runner = CliRunner(env={"COLUMNS": "200"})
# Were a check missing, the payoff command would run: keep that run tiny.
CHEAP = ["--attack", "fgsm", "--test-dropout", "0", "--n-images", "1", "--eval-samples", "1", "--device", "cpu"]


def _one_line_error(result, *needles: str, code: int = 2) -> str:
    out = result.output
    assert result.exit_code == code, out
    assert "Traceback" not in out and not isinstance(result.exception, (OSError, AssertionError)), out
    lines = out.strip().splitlines()
    assert lines[-1].startswith("error: ") and sum(line.startswith("error") for line in lines) == 1, out
    for needle in needles:
        assert needle in lines[-1], out
    return lines[-1]


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if the command starts training (an output check must come first)."""
    import payoffs.training as training

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the output was checked")
    monkeypatch.setattr(training, "train", refuse)


@pytest.fixture
def tiny_data(monkeypatch):
    import payoffs.data as data_mod
    from payoffs.data import Dataset
    full = data_mod.load_dataset("mnist-5k")
    tiny = Dataset("mnist-5k", full.x_train[:64], full.y_train[:64], full.x_test[:16], full.y_test[:16])
    monkeypatch.setattr(data_mod, "load_dataset", lambda name, data_dir=None: tiny)


# --------------------------------------------------------------------------- item 1: outputs vs inputs
def test_payoff_out_json_would_overwrite_its_own_sidecar(tmp_path: Path, small_checkpoint) -> None:
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["payoff", "--model", str(small_checkpoint), "--out", str(out), *CHEAP,
                                 "--cache-dir", str(tmp_path / "c")])
    _one_line_error(result, f"--out {out} and its JSON sidecar {out} are the same file")
    assert not out.exists()


def test_payoff_out_is_the_model(tmp_path: Path, small_checkpoint) -> None:
    model = tmp_path / "m.pt"
    model.write_bytes(small_checkpoint.read_bytes())
    before = model.read_bytes()
    result = runner.invoke(app, ["payoff", "--model", str(model), "--out", str(model), *CHEAP,
                                 "--cache-dir", str(tmp_path / "c")])
    _one_line_error(result, f"--out {model} is the input --model {model}")
    assert model.read_bytes() == before


def test_payoff_sidecar_is_the_strategies_file(tmp_path: Path, small_checkpoint) -> None:
    toml = tmp_path / "p.json"
    toml.write_text('[[attacker]]\nattack = "fgsm"\n[defender]\ntest_dropout = [0]\n')
    result = runner.invoke(app, ["payoff", "--model", str(small_checkpoint), "--strategies", str(toml),
                                 "--out", str(tmp_path / "p.csv"), *CHEAP, "--cache-dir", str(tmp_path / "c")])
    _one_line_error(result, f"its JSON sidecar {toml} is the input --strategies {toml}")


def test_solve_out_is_its_input(tmp_path: Path) -> None:
    from gameplay.synthetic import synthetic_payoff_table
    table = tmp_path / "p.csv"
    synthetic_payoff_table(4, 3).to_csv(table, index=False)
    before = table.read_bytes()
    result = runner.invoke(app, ["solve", str(table), "--out", str(table)])
    _one_line_error(result, f"--out {table} is the input PAYOFF {table}")
    assert table.read_bytes() == before


@pytest.mark.parametrize("which", ["model", "payoffs", "out"])
def test_gradvar_csv_is_an_input_or_the_page(tmp_path: Path, small_checkpoint, which: str) -> None:
    model = tmp_path / "m.pt"
    model.write_bytes(small_checkpoint.read_bytes())
    payoffs = tmp_path / "p.csv"
    payoffs.write_text("a,b\n1,2\n")
    target = {"model": model, "payoffs": payoffs, "out": tmp_path / "g.html"}[which]
    result = runner.invoke(app, ["gradvar", "--model", str(model), "--payoffs", str(payoffs),
                                 "--out", str(tmp_path / "g.html"), "--csv", str(target)])
    needle = {"model": f"--csv {model} is the input --model", "payoffs": f"--csv {payoffs} is the input --payoffs",
              "out": "are the same file"}[which]
    _one_line_error(result, needle)
    assert model.read_bytes() == small_checkpoint.read_bytes() and payoffs.read_text() == "a,b\n1,2\n"


# --------------------------------------------------------------------------- items 3, 10: checked before work
@pytest.mark.parametrize("case", ["directory", "under_file", "unwritable"])
def test_train_checks_out_before_training(tmp_path: Path, no_training, case: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    if case == "unwritable":
        with unwritable_dir(tmp_path / "ro") as ro:
            result = runner.invoke(app, ["train", "--epochs", "1", "--out", str(ro / "m.pt"), "--device", "cpu"])
            _one_line_error(result, f"--out {ro / 'm.pt'}: cannot write in {ro}")
        return
    out = {"directory": tmp_path, "under_file": blocker / "m.pt"}[case]
    result = runner.invoke(app, ["train", "--epochs", "1", "--out", str(out), "--device", "cpu"])
    needle = {"directory": "is a directory", "under_file": f"{blocker} is not a directory"}[case]
    _one_line_error(result, f"--out {out}", needle)


def test_train_on_a_full_disk_is_one_line(tmp_path: Path, tiny_data) -> None:
    with tiny_filesystem(tmp_path / "tiny", size_kib=256) as fs:
        result = runner.invoke(app, ["train", "--epochs", "1", "--out", str(fs / "m.pt"), "--device", "cpu"])
        _one_line_error(result, f"cannot write {fs / 'm.pt'}: No space left on device")
        assert [p.name for p in fs.iterdir()] == []


@pytest.mark.parametrize("case", ["cache_under_file", "out_under_file", "out_is_dir"])
def test_payoff_checks_paths_before_work(tmp_path: Path, small_checkpoint, case: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = ["--cache-dir", str(tmp_path / "c")]
    args = {"cache_under_file": ["--cache-dir", str(blocker / "cells"), "--out", str(tmp_path / "p.csv")],
            "out_under_file": ["--out", str(blocker / "p.csv"), *cache],
            "out_is_dir": ["--out", str(tmp_path), *cache]}[case]
    result = runner.invoke(app, ["payoff", "--model", str(small_checkpoint), *CHEAP, *args])
    needle = {"cache_under_file": f"--cache-dir {blocker / 'cells'}", "out_under_file": f"--out {blocker / 'p.csv'}",
              "out_is_dir": f"--out {tmp_path} is a directory"}[case]
    _one_line_error(result, needle)


def test_reproduce_out_under_a_file(tmp_path: Path, no_training) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["reproduce", "--out", str(blocker / "run")])
    _one_line_error(result, f"--out {blocker / 'run'}: cannot be created, {blocker} is not a directory")


def test_gradvar_on_a_full_disk_keeps_the_statistics(tmp_path: Path, small_checkpoint) -> None:
    """The page (megabytes) does not fit; the statistics CSV is written first and whole, the old one never
    left truncated, and the failure is one line."""
    with tiny_filesystem(tmp_path / "tiny", size_kib=64) as fs:
        csv = fs / "stats.csv"
        csv.write_text("old good table\n")
        result = runner.invoke(app, ["gradvar", "--model", str(small_checkpoint), "--test-dropout", "0.1,0.5",
                                     "--grad-samples", "3", "--dims", "2", "--n-images", "2",
                                     "--out", str(fs / "g.html"),
                                     "--csv", str(csv), "--device", "cpu"])
        _one_line_error(result, f"cannot write {fs / 'g.html'}: No space left on device")
        assert len(pd.read_csv(csv)) == 2
        assert sorted(p.name for p in fs.iterdir()) == ["stats.csv"]


# --------------------------------------------------------------------------- item 12: plain-text messages
def test_error_keeps_square_brackets(tmp_path: Path, small_checkpoint) -> None:
    result = runner.invoke(app, ["payoff", "--model", str(small_checkpoint), "--attack", "cw[k=0]",
                                 "--out", str(tmp_path / "p.csv")])
    _one_line_error(result, "'cw[k=0]'")


def test_error_with_closing_tag_does_not_crash_the_printer(tmp_path: Path) -> None:
    path = tmp_path / "a[/x]b[bold].pt"
    result = runner.invoke(app, ["accuracy", "--model", str(path)])
    _one_line_error(result, f"{path}: checkpoint file not found")


def test_solve_error_names_the_full_defender_label(tmp_path: Path) -> None:
    """Also item 14: a negative l2_mean is refused with one line naming the cell."""
    from gameplay.synthetic import synthetic_payoff_table
    df = synthetic_payoff_table(4, 3)
    row = df.index[df["defender"] == "dropout[r'=0.45]"][0]
    df.loc[row, "l2_mean"] = -1.0
    df.to_csv(tmp_path / "p.csv", index=False)
    result = runner.invoke(app, ["solve", str(tmp_path / "p.csv")])
    _one_line_error(result, "l2_mean -1", "defender dropout[r'=0.45]")


@pytest.mark.parametrize("value", ["inf", "-inf", "-0.5"])
def test_solve_refuses_impossible_l2(tmp_path: Path, value: str) -> None:
    from gameplay.synthetic import synthetic_payoff_table
    df = synthetic_payoff_table(4, 3)
    df["l2_mean"] = df["l2_mean"].astype(object)
    df.loc[2, "l2_mean"] = value
    df.to_csv(tmp_path / "p.csv", index=False)
    result = runner.invoke(app, ["solve", str(tmp_path / "p.csv"), "--mu", "0.1"])
    _one_line_error(result, "l2_mean", "is not a distance")


def test_solve_accepts_empty_l2_where_no_attack_succeeded(tmp_path: Path) -> None:
    from gameplay.synthetic import synthetic_payoff_table
    df = synthetic_payoff_table(4, 3)
    df.loc[2, "l2_mean"] = float("nan")
    df.to_csv(tmp_path / "p.csv", index=False)
    assert runner.invoke(app, ["solve", str(tmp_path / "p.csv")]).exit_code == 0


# --------------------------------------------------------------------------- item 8: --jobs beyond the cores
def test_more_jobs_than_cores_warns_once_and_goes_on(tmp_path: Path) -> None:
    from payoffs.executor import available_cores
    jobs = available_cores() + 1
    result = runner.invoke(app, ["payoff", "--model", str(tmp_path / "missing.pt"), "--jobs", str(jobs), *CHEAP,
                                 "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "p.csv")])
    lines = result.output.strip().splitlines()
    assert lines[0] == f"warning: {jobs} parallel jobs on {available_cores()} core(s): they will share the cores, " \
                       f"each cell running slower; going on"
    assert lines[-1].startswith("error: ") and "checkpoint file not found" in lines[-1]
