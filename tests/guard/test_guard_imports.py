"""Packaging rules: the base guard imports no framework or store, and each
third-party library is imported at one point only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import keyturn.guard

GUARD = Path(keyturn.guard.__file__).parent


def test_base_import_pulls_in_no_framework_or_store() -> None:
    code = (
        "import sys, keyturn.guard; "
        "bad = {'starlette', 'fastapi', 'redis', 'sqlalchemy', 'keyturn.server', 'keyturn.storage'}"
        " & set(sys.modules); print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_each_library_is_imported_at_one_point() -> None:
    owners = {"joserfc": "_jose.py", "httpx2": "_http.py", "starlette": "starlette.py",
              "fastapi": "fastapi.py", "redis": "redis_denylist.py"}  # fmt: skip
    for path in sorted(GUARD.glob("*.py")):
        for library in imported_modules(path) & owners.keys():
            assert path.name == owners[library], f"{path.name} imports {library}"


def test_guard_never_imports_the_server_side() -> None:
    for path in GUARD.glob("*.py"):
        text = path.read_text()
        assert "keyturn.server" not in text, path.name
        assert "keyturn.storage" not in text, path.name
