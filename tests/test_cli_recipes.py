"""`defdrop train --recipe ... --recipe-param NAME=VALUE`: checks before training, help from the declarations,
per-epoch progress lines when piped, recipe metadata in the checkpoint."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from payoffs.checkpoint import load_checkpoint
from payoffs.params import format_value
from payoffs.recipes import RECIPES

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if the command gets as far as loading data or training."""
    import payoffs.data
    import payoffs.training

    def refuse(*_, **__):
        raise AssertionError("the command started work before checking its input")

    monkeypatch.setattr(payoffs.data, "load_dataset", refuse)
    monkeypatch.setattr(payoffs.training, "train", refuse)


@pytest.mark.parametrize("args,message", [
    (["--recipe", "distilation"], "unknown recipe 'distilation'; choose one of standard, adversarial, "
                                  "distillation; did you mean distillation?"),
    (["--recipe", "adversarial", "--recipe-param", "eps=-0.1"], "adversarial eps -0.1 must be a number in (0, 1]"),
    (["--recipe", "distillation", "--recipe-param", "temperature=0"],
     "distillation temperature 0 must be a number > 0"),
    (["--recipe", "distillation", "--recipe-param", "temperature=-3"],
     "distillation temperature -3 must be a number > 0"),
    (["--recipe", "distillation", "--recipe-param", "eps=0.3"],
     "distillation has no parameter 'eps' (it takes temperature, teacher_epochs); it is a parameter of recipe "
     "adversarial"),
    (["--recipe-param", "temperature=100"], "standard has no parameter 'temperature'"),
    (["--recipe", "adversarial", "--recipe-param", "method=fgsm", "--recipe-param", "steps=10"],
     "adversarial steps only applies to method pgd"),
    (["--recipe", "adversarial", "--recipe-param", "steps=many"], "adversarial steps 'many' is not an integer >= 1"),
    (["--recipe", "adversarial", "--recipe-param", "eps"], "--recipe-param 'eps' must be NAME=VALUE"),
    (["--recipe", "adversarial", "--recipe-param", "eps=0.1", "--recipe-param", "eps=0.2"],
     "--recipe-param eps given twice"),
])
def test_bad_recipe_input_one_line_exit_2_before_training(no_training, tmp_path: Path, args: list[str],
                                                          message: str) -> None:
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "m.pt"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_output_path_checked_before_training(no_training, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, ["train", "--out", str(blocker / "m.pt")])
    assert result.exit_code == 2 and "is not a directory" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_help_lists_every_recipe_parameter_with_its_default() -> None:
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in RECIPES:
        assert name in text
        for p in RECIPES[name].params.params:
            default = str(p.default).lower() if isinstance(p.default, bool) else format_value(p.default)
            assert f"{p.name}={default}" in text, (p.name, default)
            assert f"{name} {p.name} ({p.allowed()}, default {default})" in text


def test_train_distillation_writes_recipe_and_prints_a_line_per_epoch(tmp_path: Path, monkeypatch) -> None:
    import payoffs.data as data_mod
    from payoffs.data import Dataset

    full = data_mod.load_dataset("mnist-5k")
    tiny = Dataset("mnist-5k", full.x_train[:256], full.y_train[:256], full.x_test[:32], full.y_test[:32])
    monkeypatch.setattr(data_mod, "load_dataset", lambda name, data_dir=None: tiny)
    out = tmp_path / "sub" / "distilled.pt"
    result = runner.invoke(app, ["train", "--recipe", "distillation", "--recipe-param", "temperature=20",
                                 "--recipe-param", "teacher_epochs=2", "--epochs", "1", "--out", str(out),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    epochs = [line for line in lines if " epoch " in line]
    assert len(epochs) == 3  # stderr is not a terminal here: one line per epoch, no bar
    assert "teacher epoch 1/2, batch 2/2, loss " in epochs[0] and "student epoch 1/1, batch 2/2" in epochs[2]
    assert "distillation[T=20,te=2]: test accuracy" in result.output
    model, meta = load_checkpoint(out)
    assert meta["recipe"] == "distillation" and meta["recipe_params"] == {"temperature": 20.0, "teacher_epochs": 2}
    assert meta["recipe_label"] == "distillation[T=20,te=2]" and 0.0 <= meta["teacher_test_accuracy"] <= 1.0
