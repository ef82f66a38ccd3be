"""The CLI: one-line errors with exit code 2, training writes a loadable checkpoint."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from payoffs.checkpoint import load_checkpoint, save_checkpoint

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.mark.parametrize("args,message", [
    (["train", "--train-dropout", "1.0"], "training dropout rate 1.0 must be in [0, 1)"),
    (["train", "--train-dropout", "-0.2"], "must be in [0, 1)"),
    (["train", "--epochs", "0"], "epochs 0 must be at least 1"),
    (["train", "--dataset", "svhn"], "unknown dataset 'svhn'"),
    (["train", "--dataset", "mnist", "--data-dir", "/nonexistent"], "/nonexistent: data directory does not exist"),
    (["train", "--device", "tpu"], "unknown device 'tpu'"),
    (["accuracy", "--model", "/nonexistent.pt"], "checkpoint file not found"),
])
def test_bad_input_one_line_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_accuracy_command(tmp_path: Path, small_trained) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, small_trained.model, {"dataset": "mnist-5k", "train_dropout": 0.3})
    result = runner.invoke(app, ["accuracy", "--model", str(path), "--test-dropout", "0,0.5", "--sap",
                                 "--eval-samples", "2"])
    assert result.exit_code == 0, result.output
    assert "dropout[r'=0.5]" in result.output and "sap" in result.output
    bad = runner.invoke(app, ["accuracy", "--model", str(path), "--test-dropout", "0,abc"])
    assert bad.exit_code == 2 and "--test-dropout: 'abc' is not a number" in bad.output


def test_train_command_writes_checkpoint(tmp_path: Path, monkeypatch) -> None:
    import payoffs.data as data_mod
    from payoffs.data import Dataset
    full = data_mod.load_dataset("mnist-5k")
    tiny = Dataset("mnist-5k", full.x_train[:128], full.y_train[:128], full.x_test[:32], full.y_test[:32])
    monkeypatch.setattr(data_mod, "load_dataset", lambda name, data_dir=None: tiny)
    out = tmp_path / "m.pt"
    result = runner.invoke(app, ["train", "--epochs", "1", "--train-dropout", "0.5", "--out", str(out),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    model, meta = load_checkpoint(out)
    assert meta["train_dropout"] == 0.5 and meta["epochs"] == 1 and model.train_dropout == 0.5


def test_gradvar_command(tmp_path: Path, small_checkpoint) -> None:
    import pandas as pd

    html, csv = tmp_path / "g.html", tmp_path / "s.csv"
    result = runner.invoke(app, ["gradvar", "--model", str(small_checkpoint), "--test-dropout", "0.1,0.5", "--sap",
                                 "--grad-samples", "5", "--dims", "3", "--n-images", "2", "--out", str(html),
                                 "--csv", str(csv), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "dropout[r'=0.5]" in result.output and "sap[frac=1]" in result.output
    # The statistics table: readable headers, nothing truncated at 80 columns, no scientific notation.
    assert "variance (all dims)" in result.output and "var_all" not in result.output and "…" not in result.output
    table = result.output.split("variance (all dims)")[1].split("wrote")[0]
    assert not re.search(r"\d[eE][+-]?\d|\bnan\b|\bNone\b", table), table
    assert len(pd.read_csv(csv)) == 3 and html.stat().st_size > 1_000_000
    bad = runner.invoke(app, ["gradvar", "--model", str(small_checkpoint), "--grad-samples", "1", "--out", str(html)])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1


def test_payoff_command_prints_for_people_and_writes_fractions(tmp_path: Path, small_checkpoint) -> None:
    """The terminal table: readable headers, rates in percent with their interval; the CSV keeps fractions."""
    import pandas as pd

    out = tmp_path / "p.csv"
    result = runner.invoke(app, ["payoff", "--model", str(small_checkpoint), "--attack", "fgsm", "--test-dropout",
                                 "0,0.5", "--n-images", "1", "--eval-samples", "2", "--device", "cpu", "--out",
                                 str(out), "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("attacker"))
    assert "ASR [95% interval]" in header and "clean accuracy" in header and "mean L2" in header
    assert "asr_low" not in result.output and "clean_accuracy" not in result.output
    table = result.output.split(header)[1].split("wrote")[0]
    assert re.search(r"\d%( \[[\d.]+, [\d.]+\])?", table) and not re.search(r"\d[eE][+-]?\d|\bnan\b", table)
    written = pd.read_csv(out)
    assert written["clean_accuracy"].between(0, 1).all() and written["asr"].between(0, 1).all()
