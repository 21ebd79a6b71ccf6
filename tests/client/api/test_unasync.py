"""The blocking API shells are generated from the asyncio ones, and must be current.

``scripts/unasync.py --check`` also runs in CI; this test makes the README's
test command catch a stale ``_sync`` too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "unasync.py"
API = ROOT / "src" / "keyturn" / "client" / "api"


def _script() -> ModuleType:
    return load_script(SCRIPT, "unasync")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def test_the_checked_in_sync_shells_are_what_the_script_writes() -> None:
    result = _run("--check")
    assert result.returncode == 0, result.stderr


def test_check_fails_on_an_edited_a_missing_or_an_extra_generated_file(tmp_path: Path) -> None:
    async_dir = tmp_path / "_async"
    sync_dir = tmp_path / "_sync"
    shutil.copytree(API / "_async", async_dir)
    shutil.copytree(API / "_sync", sync_dir)
    assert _run("--check", "--async-dir", str(async_dir)).returncode == 0

    client = sync_dir / "client.py"
    edited = client.read_text().replace("def close(", "def shut(")
    assert edited != client.read_text()
    client.write_text(edited)
    (sync_dir / "__init__.py").unlink()
    (sync_dir / "leftover.py").write_text("x = 1\n")
    result = _run("--check", "--async-dir", str(async_dir))
    assert result.returncode == 1
    stale = {line.split()[1].rsplit("/", 1)[-1] for line in result.stderr.splitlines()}
    assert stale == {"client.py", "__init__.py", "leftover.py"}

    assert _run("--async-dir", str(async_dir)).returncode == 0
    assert _run("--check", "--async-dir", str(async_dir)).returncode == 0
    assert not (sync_dir / "leftover.py").exists()
    assert client.read_text() == (API / "_sync" / "client.py").read_text()


def test_the_substitutions_turn_asyncio_code_into_blocking_code() -> None:
    source = """\
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from keyturn.client.api._async.tokens import AsyncTokens


class AsyncPager:
    async def __aiter__(self) -> AsyncIterator[int]:
        async for page in self.pages():
            for item in page.items:
                yield item

    async def __aexit__(self, *exc: object) -> None:
        async with self._lock:
            await self._http.aclose()
        return await send_async(self._http, request)
"""
    assert (
        _script().unasync(source)
        == """\
from collections.abc import Callable, Iterable, Iterator
from keyturn.client.api._sync.tokens import Tokens


class Pager:
    def __iter__(self) -> Iterator[int]:
        for page in self.pages():
            yield from page.items

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._http.close()
        return send_sync(self._http, request)
"""
    )
