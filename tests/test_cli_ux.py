"""The command line as a user meets it: version, completion, piped output, one vocabulary, early refusals."""
from __future__ import annotations

from importlib import metadata

import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def test_version_from_package_metadata() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"defdrop {metadata.version('defdrop')}"


def test_shell_completion_is_offered() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--install-completion" in result.output and "--show-completion" in result.output


def test_torch_is_a_range_not_a_pin() -> None:
    import re
    from pathlib import Path

    from packaging.specifiers import SpecifierSet

    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    spec = SpecifierSet(re.search(r'^\s*"torch([<>=!~][^"]*)",', text, re.M).group(1))
    assert "==" not in str(spec)
    assert spec.contains("2.13.0") and not spec.contains("3.0.0")


# ---------------------------------------------------------------------------------------------- piped output
def _payoff(checkpoint, tmp_path, *extra: str, out=None) -> list[str]:
    out = out or tmp_path / "p.csv"
    return ["payoff", "--model", str(checkpoint), "--attack", "fgsm", "--test-dropout", "0,0.5", "--n-images", "1",
            "--eval-samples", "2", "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--device", "cpu",
            *extra]


def test_piped_output_is_not_wrapped_at_80_columns(small_checkpoint, tmp_path) -> None:
    """A long path and the table rows stay on one line each; no finished bar is dumped into the log."""
    deep = tmp_path / ("a-long-folder-name-" * 4) / "sweep-with-a-long-name.csv"
    deep.parent.mkdir(parents=True)
    result = runner.invoke(app, _payoff(small_checkpoint, tmp_path, out=deep), env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("wrote ") and str(deep) in line for line in lines), result.output
    rows = [line for line in lines if line.startswith("fgsm ")]
    assert len(rows) == 2 and all(len(r.split()) >= 8 for r in rows), result.output
    assert "dropout[r'=0.5]" in rows[1]
    assert "━" not in result.output  # the bar is for terminals; logs get one line per cell
    assert [line.split(":")[0] for line in lines if line.startswith("[")] == [
        "[1/2] clean-accuracy cell none (r=0.3)", "[2/2] clean-accuracy cell dropout[r'=0.5] (r=0.3)",
        "[1/2] attack cell fgsm vs none (r=0.3)", "[2/2] attack cell fgsm vs dropout[r'=0.5] (r=0.3)"]
    assert "to run: 2 attack cells, 2 clean-accuracy cells" in result.output


def test_gradvar_table_keeps_its_defender_column_when_piped(small_checkpoint, tmp_path) -> None:
    result = runner.invoke(app, ["gradvar", "--model", str(small_checkpoint), "--test-dropout", "0.5", "--sap",
                                 "--grad-samples", "3", "--dims", "2", "--n-images", "2", "--device", "cpu",
                                 "--out", str(tmp_path / "g.html")], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    rows = [line for line in result.output.splitlines() if line.startswith(("dropout[r'=0.5] ", "sap[frac=1] "))]
    assert len(rows) == 2, result.output
    assert "gradvar: sap[frac=1] done, 12/12 gradients" in result.output  # progress in units, one line per defender


# ---------------------------------------------------------------------------------------------- refusals
def test_strategies_file_refuses_the_options_it_replaces(small_checkpoint, tmp_path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('[[attacker]]\nattack = "fgsm"\n\n[defender]\ntest_dropout = [0.5]\n')
    result = runner.invoke(app, _payoff(small_checkpoint, tmp_path, "--strategies", str(toml), "--kappa", "5"))
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "--kappa" in result.output and "--test-dropout" in result.output
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.json"))


@pytest.mark.parametrize("command,args,message", [
    ("payoff", ["--attack", "fgsm", "--kappa", "5"], "--kappa does not apply to --attack fgsm (fgsm takes --eps)"),
    ("payoff", ["--attack", "fgsm,pgd", "--theta", "0.5"], "--theta does not apply to --attack fgsm,pgd"),
    ("payoff", ["--attack", "cw", "--param", "steps=3"], "--param steps does not apply to --attack cw"),
    ("audit", ["--attack", "cw", "--eps", "0.1"], "--eps does not apply to --attack cw"),
    ("audit", ["--attack", "pgd", "--gamma", "0.2"], "--gamma does not apply to --attack pgd"),
])
def test_parameter_of_another_attack_is_refused_in_one_line(command, args, message, tmp_path) -> None:
    missing = tmp_path / "no-such-model.pt"  # refused before the model is even opened
    result = runner.invoke(app, [command, "--model", str(missing), *args, "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert message in result.output


@pytest.mark.parametrize("command,args,message", [
    ("gradvar", ["--grad-samples", "1"], "--grad-samples 1 must be at least 2"),
    ("gradvar", ["--dims", "0"], "--dims 0 must be at least 1"),
    ("gradvar", ["--kappa", "-1"], "kappa -1 must be"),
    ("accuracy", ["--eval-samples", "0"], "--eval-samples 0 must be at least 1"),
    ("payoff", ["--eval-samples", "0"], "--eval-samples 0 must be at least 1"),
    ("payoff", ["--batch-size", "0"], "--batch-size 0 must be at least 1"),
])
def test_option_bounds_are_checked_before_the_model_is_opened(command, args, message, tmp_path) -> None:
    result = runner.invoke(app, [command, "--model", str(tmp_path / "no-such-model.pt"), *args])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert message in result.output


def test_too_many_images_fail_before_any_cell(small_checkpoint, tmp_path) -> None:
    result = runner.invoke(app, _payoff(small_checkpoint, tmp_path, "--n-images", "5000"))
    assert result.exit_code == 2, result.output
    assert "5000 images requested" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output  # before the plan is even announced
    assert not any((tmp_path / "cache").rglob("*.json"))  # not even a clean-accuracy cell ran


# ---------------------------------------------------------------------------------------------- Ctrl-C
def test_interrupted_payoff_writes_the_partial_table_and_resumes(small_checkpoint, tmp_path, monkeypatch) -> None:
    import pandas as pd

    import payoffs.table as table_mod

    real, calls = table_mod.run_cell, []

    def second_cell_interrupted(spec, progress=None, **kw):
        calls.append(spec)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(spec, progress, **kw)

    monkeypatch.setattr(table_mod, "run_cell", second_cell_interrupted)
    result = runner.invoke(app, _payoff(small_checkpoint, tmp_path))
    assert result.exit_code == 130, result.output
    assert "wrote the partial table of the 1 finished of 2 attack cells" in result.output
    assert "run the same command again to resume" in result.output
    partial = pd.read_csv(tmp_path / "p.partial.csv")
    assert list(partial["defender"]) == ["none"] and not (tmp_path / "p.csv").exists()
    assert (tmp_path / "p.partial.json").exists()

    monkeypatch.setattr(table_mod, "run_cell", real)
    again = runner.invoke(app, _payoff(small_checkpoint, tmp_path))
    assert again.exit_code == 0, again.output
    assert "to run: 1 attack cells, 0 clean-accuracy cells (in the cache: 1 and 2)" in again.output
    full = pd.read_csv(tmp_path / "p.csv")
    assert len(full) == 2 and full.iloc[0]["asr"] == partial.iloc[0]["asr"]
    assert not (tmp_path / "p.partial.csv").exists()  # the complete table supersedes it


# ---------------------------------------------------------------------------------------------- vocabulary
def _options(command: str) -> dict[str, object]:
    import typer

    click_command = typer.main.get_command(app).commands[command]
    return {opt: p for p in click_command.params for opt in p.opts}


@pytest.mark.parametrize("flag,commands", [
    ("--eval-samples", ["accuracy", "payoff", "audit"]),
    ("--n-images", ["payoff", "audit", "gradvar"]),
    ("--test-dropout", ["accuracy", "payoff", "audit", "gradvar"]),
    ("--sap", ["accuracy", "payoff", "audit", "gradvar"]),
    ("--sap-draws", ["accuracy", "payoff", "audit"]),
    ("--kappa", ["payoff", "audit", "gradvar"]),
    ("--data-dir", ["train", "accuracy", "payoff", "audit", "gradvar", "reproduce"]),
    ("--data", ["accuracy", "payoff", "audit", "gradvar"]),
    ("--model-factory", ["accuracy", "payoff", "audit", "gradvar"]),
    ("--seed", ["train", "accuracy", "payoff", "audit", "gradvar", "reproduce"]),
    ("--device", ["train", "accuracy", "payoff", "audit", "gradvar", "reproduce", "demo"]),
    ("--jobs", ["payoff", "reproduce", "demo"]),
    ("--out", ["train", "payoff", "audit", "gradvar", "reproduce", "demo"]),
])
def test_one_name_per_meaning_across_commands(flag: str, commands: list[str]) -> None:
    for command in commands:
        options = _options(command)
        assert flag in options and not options[flag].hidden, f"{command} lacks {flag}"
    if flag in ("--eval-samples", "--n-images", "--test-dropout", "--sap-draws", "--kappa"):
        helps = {_options(c)[flag].metavar for c in commands}
        assert None not in helps


def test_old_spellings_are_hidden_aliases() -> None:
    for command in ("train", "accuracy", "payoff", "audit", "gradvar", "reproduce", "demo"):
        visible = {o for o, p in _options(command).items() if not p.hidden}
        assert not visible & {"--samples", "--images"}, command
    assert _options("accuracy")["--samples"].hidden and _options("gradvar")["--images"].hidden


@pytest.mark.parametrize("command", ["train", "accuracy", "payoff", "audit", "gradvar", "reproduce", "demo"])
def test_help_has_examples_groups_and_list_metavars(command: str) -> None:
    import typer

    click_command = typer.main.get_command(app).commands[command]
    assert click_command.epilog and click_command.epilog.startswith("Examples:")
    assert f"defdrop {command} " in click_command.epilog
    for p in click_command.params:
        if p.name in ("help", "install_completion", "show_completion") or p.hidden:
            continue
        assert getattr(p, "rich_help_panel", None), f"{command} {p.opts} has no option group"
        if isinstance(p.default, str) and "," in p.default:
            assert p.metavar and ",..." in p.metavar, f"{command} {p.opts}: name the list type"


def test_attack_parameter_help_shows_the_declared_defaults() -> None:
    result = runner.invoke(app, ["payoff", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "cw: confidence margin (a number >= 0, default 0)" in text
    assert "pgd: Linf budget (a number in (0, 1], default 0.3)" in text


def test_attack_parameter_options_come_from_one_declaration() -> None:
    """Both commands that take attack parameters expose exactly ATTACK_FLAGS and --param, and a command built
    after a new entry is added exposes it with no command listing it."""
    import typer

    from cli import ATTACK_FLAGS, attack_param_options

    for command in ("payoff", "audit"):
        flags = {o for o, p in _options(command).items() if getattr(p, "rich_help_panel", "").startswith("Attack p")}
        assert flags == {f"--{f}" for f in ATTACK_FLAGS} | {"--param"}, command
    seen = {}
    extra = typer.Typer()

    @extra.command()
    @attack_param_options(many=True)
    def probe(attack_params=None) -> None:
        seen["values"] = attack_params.values

    ATTACK_FLAGS["max-iterations"] = "max_iterations"
    try:
        built = attack_param_options(many=True)(lambda attack_params=None: attack_params)
    finally:
        del ATTACK_FLAGS["max-iterations"]
    import inspect

    assert "max_iterations" in inspect.signature(built).parameters
    result = CliRunner().invoke(extra, ["--kappa", "0, 5", "--param", "abort_early=false"])
    assert result.exit_code == 0, result.output
    assert seen["values"] == {"kappa": ["0", "5"], "abort_early": ["false"]}


def test_deprecated_alias_still_works(small_checkpoint, tmp_path) -> None:
    result = runner.invoke(app, ["accuracy", "--model", str(small_checkpoint), "--test-dropout", "0",
                                 "--samples", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "--samples is deprecated; it is now --eval-samples" in result.output and "M=1" in result.output
    both = runner.invoke(app, ["accuracy", "--model", str(small_checkpoint), "--samples", "1", "--eval-samples", "3"])
    assert both.exit_code == 2 and "not both" in both.output


@pytest.mark.parametrize("command", ["accuracy", "payoff", "audit", "gradvar"])
def test_data_dir_is_honoured_by_every_command_that_reads_data(command, small_trained, tmp_path) -> None:
    """A checkpoint of a dataset whose files live elsewhere: --data-dir is where every command looks."""
    from payoffs.checkpoint import save_checkpoint

    checkpoint = tmp_path / "mnist.pt"
    save_checkpoint(checkpoint, small_trained.model, {"dataset": "mnist", "train_dropout": 0.3})
    where = tmp_path / "my-mnist-files"
    result = runner.invoke(app, [command, "--model", str(checkpoint), "--data-dir", str(where), "--device", "cpu",
                                 "--out", str(tmp_path / ("o.csv" if command == "payoff" else "o.html")),
                                 *(["--cache-dir", str(tmp_path / "cache")] if command == "payoff" else [])]
                           if command != "accuracy" else
                           [command, "--model", str(checkpoint), "--data-dir", str(where), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert f"{where}: data directory does not exist" in result.output


@pytest.mark.parametrize("args,message", [
    (["--executor", "spark"], "unknown executor 'spark'"),
    (["--executor", "local", "--scheduler", "tcp://127.0.0.1:8786"], "--scheduler needs --executor dask"),
    (["--jobs", "0"], "--jobs 0 must be at least 1"),
])
def test_executor_options_are_checked_before_the_model_is_opened(args, message, tmp_path) -> None:
    for command in ("payoff", "reproduce"):
        model = ["--model", str(tmp_path / "no-such-model.pt")] if command == "payoff" else []
        result = runner.invoke(app, [command, *model, *args, "--out", str(tmp_path / command)])
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and message in result.output, result.output
