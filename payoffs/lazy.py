"""Lazy package exports (PEP 562): a package lists ``name -> module`` and each name is imported on first use."""
from __future__ import annotations

import sys
from importlib import import_module
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[list[str], Callable[[str], Any],
                                                                  Callable[[], list[str]]]:
    """``__all__, __getattr__, __dir__`` for ``package`` whose public ``exports`` map each name to its module::

        __all__, __getattr__, __dir__ = lazy_exports(__name__, {"PaperCNN": "payoffs.models"})
    """
    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return sorted(exports), __getattr__, __dir__
