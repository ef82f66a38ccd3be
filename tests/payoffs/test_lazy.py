"""The lazy package facades: a name imports its module on first use; unknown names are AttributeErrors."""
from __future__ import annotations

import sys
import types

import pytest

from payoffs.lazy import lazy_exports


def test_names_import_on_first_use_and_unknown_names_fail(monkeypatch) -> None:
    package = types.ModuleType("facade")
    monkeypatch.setitem(sys.modules, "facade", package)
    package.__all__, package.__getattr__, package.__dir__ = lazy_exports("facade", {"JSONDecoder": "json.decoder"})
    assert package.__all__ == ["JSONDecoder"]
    assert package.__getattr__("JSONDecoder").__name__ == "JSONDecoder"
    assert "JSONDecoder" in package.__dir__() and "__all__" in package.__dir__()
    with pytest.raises(AttributeError, match="module 'facade' has no attribute 'nope'"):
        package.__getattr__("nope")


@pytest.mark.parametrize("package", ["payoffs", "gameplay", "analysis"])
def test_every_export_resolves(package: str) -> None:
    module = __import__(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
