"""Shared test configuration.

Async tests run on asyncio through anyio's plugin. PostgreSQL tests use the real
server at ``KEYTURN_TEST_POSTGRES_URL`` (default: the local ``test`` database)
in a fresh database created for this run and dropped after it; they are
skipped, saying why, only when that server cannot be reached.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

# Property tests are deterministic everywhere, CI included: a derandomized search
# and no example database, so one run's failure is every run's failure and a
# stored example cannot fail later runs alone (issue 17, item 15). Explore with
# random examples on purpose: ``pytest --hypothesis-profile=default``.
hypothesis_settings.register_profile("keyturn", derandomize=True, database=None, print_blob=True)
hypothesis_settings.load_profile("keyturn")


def load_script(path: Path, name: str) -> ModuleType:
    """A script that is not a package module (a benchmark, an example), imported by path.

    Registered under ``name`` in `sys.modules` before it runs: its dataclasses look
    their module up there."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


POSTGRES_URL = os.environ.get(
    "KEYTURN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# One pepper for the whole run: a shared PostgreSQL database keeps its keys.
TEST_PEPPER = secrets.token_hex(32)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        pytest.skip("asyncpg is not installed (pip install 'keyturn[postgres]')")
    name = "keyturn_test_" + secrets.token_hex(4)
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError) as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    base = POSTGRES_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def own_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database for this test alone, for tests that change what others share (keys)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'keyturn.db'}"
        return
    shared: str = request.getfixturevalue("postgres_database_url")  # skips when absent
    name = "keyturn_test_" + secrets.token_hex(4)
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield f"{shared.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Each storage-backed test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'keyturn.db'}"
    url: str = request.getfixturevalue("postgres_database_url")
    return url


REDIS_URL = os.environ.get("KEYTURN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PREFIX = f"kt-test-{secrets.token_hex(4)}:"
"""This run's Redis namespace (KEYTURN_REDIS_PREFIX): deleted when the run ends."""


@pytest.fixture(scope="session", autouse=True)
def _clean_redis_namespace() -> Iterator[None]:
    """Leave nothing in the shared Redis: every key this run wrote under its prefix goes."""
    yield
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
        keys = list(client.scan_iter(REDIS_PREFIX + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()
    except Exception:
        pass


def redis_or_skip() -> Any:
    """A client of the test Redis; the test is skipped, saying why, when none answers."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    return client


@pytest.fixture
def redis_client() -> Iterator[Any]:
    client = redis_or_skip()
    yield client
    client.close()
