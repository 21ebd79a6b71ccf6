"""The client SDK's modules import one another without a cycle.

Every import counts, also those under ``TYPE_CHECKING`` and inside functions:
a cycle hidden that way still ties the modules together (each must be read to
understand the other). Only the implicit import of a parent package is left
out, as import checkers do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import keyturn.client

PACKAGE = "keyturn.client"
ROOT = Path(keyturn.client.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (``from pkg import mod`` is ``mod``)."""
    modules = {_module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in modules
                    else node.module
                    for alias in node.names
                ]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_client_package_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_a_cycle_through_a_type_checking_import_is_found(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from keyturn.client.b import B\n")
    (tmp_path / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from keyturn.client.a import A\n"
    )
    (tmp_path / "c.py").write_text("def f():\n    from keyturn.client import a\n")
    graph = import_graph(tmp_path)
    assert graph["keyturn.client.c"] == {"keyturn.client.a"}
    assert cycles(graph) == [["keyturn.client.a", "keyturn.client.b"]]
