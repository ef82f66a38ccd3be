"""The notebook entry points: ``from payoffs import ...`` and ``from analysis import ...`` resolve every curated
name, lazily (importing the packages loads no torch), and the packages ship ``py.typed``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["payoffs", "analysis", "gameplay"])
def test_every_export_resolves_and_is_typed(package: str) -> None:
    module = __import__(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        module.nope  # noqa: B018
    assert (ROOT / package / "py.typed").is_file()
    data = [line for line in (ROOT / "pyproject.toml").read_text().splitlines() if line.startswith(f"{package} = [")]
    assert data and '"py.typed"' in data[0]


def test_packages_import_without_torch() -> None:
    code = ("import sys, payoffs, analysis, gameplay; from payoffs import labels; "
            "assert 'torch' not in sys.modules, 'torch loaded'; "
            "from payoffs import load_model, DataFile; assert 'torch' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]


def test_exports_are_the_library_objects() -> None:
    import analysis
    import payoffs
    from analysis.gradvar import run_gradvar
    from payoffs.sources import FactorySource
    from payoffs.table import build_payoff_table
    assert payoffs.FactorySource is FactorySource and payoffs.build_payoff_table is build_payoff_table
    assert analysis.run_gradvar is run_gradvar
