"""The house's rooms: imports flow analysis -> gameplay -> payoffs, never upward, and no two modules import each
other (function-level imports included)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("payoffs", "gameplay", "analysis")
RANK = {"payoffs": 0, "gameplay": 1, "analysis": 2}


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module)
                    found.update(f"{node.module}.{a.name}" for a in node.names)
                elif isinstance(node, ast.Import):
                    found.update(a.name for a in node.names)
            graph[module] = {m for m in found if m.split(".")[0] in PACKAGES}
    modules = set(graph)
    return {m: {i for i in deps if i in modules and i != m} for m, deps in graph.items()}


def test_imports_never_go_upward() -> None:
    upward = [(m, i) for m, deps in _imports().items() for i in deps
              if RANK[i.split(".")[0]] > RANK[m.split(".")[0]]]
    assert not upward, upward


def test_no_import_cycles() -> None:
    graph = _imports()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt.endswith("__init__") or nxt in PACKAGES:
                continue  # the lazy package facades import on first use only
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state and module not in PACKAGES:
            visit(module, [module])
    assert not cycles, cycles
