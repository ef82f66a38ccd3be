"""The command line as a user meets it: version, completion, piped output, one vocabulary, early refusals."""
from __future__ import annotations

from importlib import metadata

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
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    deps = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(Requirement(d) for d in deps if Requirement(d).name == "torch")
    assert "==" not in str(torch.specifier)
    assert torch.specifier.contains("2.13.0") and not torch.specifier.contains("3.0.0")
