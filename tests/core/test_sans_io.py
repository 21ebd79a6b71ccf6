"""The core is sans-IO: importing all of it pulls in no HTTP library, framework or ORM."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import keyturn.core

FORBIDDEN = ("httpx2", "httpx", "starlette", "sqlalchemy", "requests", "redis", "anyio")


def test_core_imports_no_io_library() -> None:
    modules = [f"keyturn.core.{m.name}" for m in pkgutil.iter_modules(keyturn.core.__path__)]
    assert "keyturn.core.manager" in modules
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        + "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
