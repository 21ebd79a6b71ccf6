"""The test run's own clean-up of what killed runs left in the shared services.

A run killed by SIGKILL or a CI timeout cannot drop its PostgreSQL databases or
delete its Redis keys; the next run on the host does (`tests/conftest.py`). It
must take only what a dead run of this host made, and nothing still in use.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import (
    _HOST,
    RUN_ID,
    _admin,
    database_name,
    left_by_dead_run,
    redis_prefix,
    sweep_postgres,
    sweep_redis,
)


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def test_names_say_whose_they_are(dead_pid: int) -> None:
    assert database_name().startswith(f"keyturn_test_{RUN_ID}_")
    assert len(database_name()) <= 63  # PostgreSQL's limit for an identifier
    assert redis_prefix().startswith(f"kt-test-{RUN_ID}-")
    tail = secrets.token_hex(4)
    assert left_by_dead_run(f"keyturn_test_{_HOST}x{dead_pid}_{tail}")
    assert left_by_dead_run(f"kt-test-{_HOST}x{dead_pid}-{tail}:revoked:x")
    assert not left_by_dead_run(database_name())  # this run's own
    other_host = "0" * 6 if _HOST != "0" * 6 else "1" * 6
    assert not left_by_dead_run(f"keyturn_test_{other_host}x{dead_pid}_{tail}")
    assert not left_by_dead_run(f"keyturn_test_{tail}")  # the old, unowned form
    assert not left_by_dead_run("test")


def test_sweep_drops_only_dead_runs_databases_not_in_use(
    postgres_database_url: str, dead_pid: int, live_pid: int
) -> None:
    import asyncpg

    base = postgres_database_url.rsplit("/", 1)[0]
    dead = f"keyturn_test_{_HOST}x{dead_pid}_{secrets.token_hex(4)}"
    in_use = f"keyturn_test_{_HOST}x{dead_pid}_{secrets.token_hex(4)}"
    alive = f"keyturn_test_{_HOST}x{live_pid}_{secrets.token_hex(4)}"
    names = (dead, in_use, alive)

    async def run() -> tuple[list[str], set[str]]:
        holder = await asyncpg.connect(f"{base}/{in_use}", timeout=5)
        try:
            dropped = await sweep_postgres()
        finally:
            await holder.close()
        conn = await asyncpg.connect(postgres_database_url, timeout=5)
        try:
            rows = await conn.fetch("SELECT datname FROM pg_database")
        finally:
            await conn.close()
        return dropped, {row[0] for row in rows}

    for name in names:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        dropped, left = asyncio.run(run())
        assert dead in dropped
        assert dead not in left
        assert in_use in left  # a server of the dead run may still hold it
        assert alive in left
        assert postgres_database_url.rsplit("/", 1)[1] in left  # this run's own
    finally:
        for name in names:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_sweep_deletes_only_dead_runs_keys(redis_client: Any, dead_pid: int, live_pid: int) -> None:
    dead = f"kt-test-{_HOST}x{dead_pid}-{secrets.token_hex(4)}:"
    alive = f"kt-test-{_HOST}x{live_pid}-{secrets.token_hex(4)}:"
    mine = redis_prefix()
    keys = [p + suffix for p in (dead, alive, mine) for suffix in ("revoked:a", "rl:b")]
    try:
        for key in keys:
            redis_client.set(key, "1")
        assert sweep_redis(redis_client) >= 2
        assert redis_client.exists(*keys[:2]) == 0
        assert redis_client.exists(*keys[2:]) == 4
    finally:
        redis_client.delete(*keys)
