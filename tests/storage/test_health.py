"""Which failures are outages (503, logged once) and which are bugs (500)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from keyturn.storage.database import create_engine
from keyturn.storage.health import FULL, UNREACHABLE, ServiceHealth, database_fault, describe

pytestmark = pytest.mark.anyio


def test_a_full_sqlite_database_is_a_full_fault(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "small.db")
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("PRAGMA max_page_count=3")  # SQLite's own SQLITE_FULL, as on a full disk

    def fill() -> None:
        for _ in range(100):
            conn.execute("INSERT INTO t VALUES (?)", ("x" * 4000,))

    with pytest.raises(sqlite3.OperationalError) as caught:
        fill()
    conn.close()
    assert database_fault(caught.value) == FULL


def test_a_bug_in_sql_is_not_a_fault(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "bug.db")
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.execute("SELECT * FROM no_such_table")
    conn.close()
    assert database_fault(caught.value) is None
    assert database_fault(ValueError("bad")) is None
    assert database_fault(KeyError("x")) is None


async def test_an_unreachable_postgresql_is_an_unreachable_fault() -> None:
    pytest.importorskip("asyncpg")
    engine = create_engine("postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever the driver raises
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    await engine.dispose()
    assert database_fault(caught.value) == UNREACHABLE
    assert "\n" not in describe(caught.value)


async def test_storage_health_follows_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyturn.storage.repository import SqlStorage

    monkeypatch.setattr(ServiceHealth, "SETTLE", 0.0)
    storage = SqlStorage(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"))
    try:
        storage.health.failed(OSError("simulated"), UNREACHABLE)
        async with storage.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert storage.health.down is None  # a statement that worked heals it
        storage.health.failed(OSError(28, "No space left on device"), FULL)
        async with storage.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert storage.health.down == FULL  # a read proves nothing about a full disk
        async with storage.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v INTEGER)"))
        assert storage.health.down is None  # a committed write does
        with pytest.raises(OperationalError):
            async with storage.engine.connect() as conn:
                await conn.execute(text("SELECT * FROM no_such_table"))
        assert storage.health.down is None  # a bug is not an outage
    finally:
        await storage.close()


def test_each_change_of_state_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    health = ServiceHealth("database", logging.getLogger("test.health"), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.health"):
        for _ in range(50):
            health.failed(ConnectionRefusedError(111, "Connection refused"), UNREACHABLE)
            now[0] += 0.01
        # A request that was in flight when the outage began finishes late: no recovery.
        health.succeeded(write=True)
        assert health.down == UNREACHABLE
        now[0] += health.SETTLE
        for _ in range(50):
            health.succeeded(write=False)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unavailable (unreachable): ConnectionRefusedError")
    assert lines[1] == "database available again"
