"""The README's "Your own model" section, run as written: its factory module, its save snippet, every command of its
shell block (with sizes made tiny by options appended after the README's), and its Python example."""
from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner(env={"COLUMNS": "200"})
# Appended to each README command (the last value of an option wins): tiny sizes, same code paths.
TINY = {"accuracy": ["--eval-samples", "2"],
        "payoff": ["--n-images", "2", "--eval-samples", "2", "--search-steps", "1", "--iterations", "5"],
        "gradvar": ["--grad-samples", "3", "--n-images", "2", "--dims", "2"],
        "solve": ["--robustness-samples", "10"]}
TINY_PYTHON = {"n_images=20": "n_images=2", "eval_samples=10": "eval_samples=2", "images=10": "images=2",
               "samples=20": "samples=3"}


def section_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the README's "Your own model" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Your own model\n(.*?)^## ", text, re.S | re.M)
    assert section, "README has no 'Your own model' section"
    return re.findall(r"^```(\w+)\n(.*?)^```", section.group(1), re.S | re.M)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, mnist5k):
    """The README's mynets.py, a model it builds trained briefly on mnist-5k, saved by the README's snippet."""
    blocks = section_blocks()
    folder = tmp_path_factory.mktemp("readme")
    factory, save = [code for lang, code in blocks if lang == "python"][:2]
    assert factory.startswith("# mynets.py")
    (folder / "mynets.py").write_text(factory)
    scope: dict = {}
    exec(compile(factory, "mynets.py", "exec"), scope)
    torch.manual_seed(0)
    model = scope["build"]()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for _ in range(2):
        for i in range(0, len(mnist5k.x_train), 64):
            loss = nn.functional.cross_entropy(model(mnist5k.x_train[i:i + 64]), mnist5k.y_train[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    x_test = (mnist5k.x_test[:200].numpy() * 255).round().astype(np.uint8)
    y_test = mnist5k.y_test[:200].numpy()
    old = Path.cwd()
    os.chdir(folder)
    try:
        exec(compile(save, "README", "exec"), {"torch": torch, "np": np, "model": model, "x_test": x_test,
                                               "y_test": y_test})
    finally:
        os.chdir(old)
    assert (folder / "net.pt").is_file() and (folder / "test.npz").is_file()
    yield folder
    sys.modules.pop("mynets", None)


def test_readme_commands_run(workdir, monkeypatch) -> None:
    monkeypatch.chdir(workdir)
    shell = [code for lang, code in section_blocks() if lang == "sh"]
    assert len(shell) == 1
    commands = [shlex.split(line) for line in shell[0].splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["defdrop", "accuracy"], ["defdrop", "payoff"], ["defdrop", "gradvar"],
                                         ["defdrop", "solve"]]
    outputs = {}
    for command in commands:
        args = command[1:] + TINY[command[1]]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{' '.join(command)}\n{result.output}"
        outputs[command[1]] = result.output
    assert "defense after relu2" in outputs["accuracy"]
    assert (workdir / "mine.csv").is_file() and (workdir / "mine-gradvar.html").is_file()
    report = outputs["solve"]
    assert "Reference (undefended) accuracy of model mynet (weights" in report
    assert re.search(r"\br ?= ?", report) is None and "nan" not in report.lower().split()
    assert (workdir / "mine-report.html").is_file()


def test_readme_python_example_runs(workdir, monkeypatch, capsys) -> None:
    monkeypatch.chdir(workdir)
    code = [code for lang, code in section_blocks() if lang == "python"][2]
    for long, short in TINY_PYTHON.items():
        assert long in code, long
        code = code.replace(long, short)
    scope: dict = {}
    exec(compile(code, "README", "exec"), scope)
    table = scope["table"]
    assert len(table) == 2 * 4 and (table["slot"] == "relu2").all() and (table["model_label"] == "mynet").all()
    assert "asr_low" in capsys.readouterr().out
    assert (workdir / "mine-gradvar.html").is_file() and scope["result"].slot == "relu2"
