"""Processes starting together on a new database migrate it once, under a lock.

Four real ``keyturn db upgrade`` processes are held at a start gate until all
have imported Keyturn, then released at once against one empty database.
Without the lock, their concurrent ``CREATE TABLE``s fail (PostgreSQL: a
duplicate key in ``pg_type``; SQLite: "table ... already exists").
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from keyturn.storage import database
from tests.conftest import TEST_PEPPER

PROCESSES = 4

# The real command, with INFO logging on stderr so each process says whether it
# ran the migrations; it waits at the gate so that the four start together.
GATED_UPGRADE = """
import logging, os, sys, time
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
from keyturn.cli import main
open(sys.argv[2], "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.005)
sys.argv = ["keyturn", "db", "upgrade"]
main()
"""


def test_concurrent_upgrades_migrate_once(own_database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(
        KEYTURN_DATA_DIR=str(tmp_path),
        KEYTURN_DATABASE_URL=own_database_url,
        KEYTURN_PEPPER=TEST_PEPPER,
    )
    gate = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", GATED_UPGRADE, str(gate), str(tmp_path / f"ready{i}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready{i}").exists() for i in range(PROCESSES)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                # Stop the others now: left at the gate they would wait out its
                # deadline and then upgrade, hiding the one that failed to start.
                _kill(procs)
                pytest.fail(
                    "not every process reached the start gate:\n"
                    + _report(procs, [p.communicate() for p in procs]),
                    pytrace=False,
                )
            time.sleep(0.01)
        gate.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        _kill(procs)

    # Messages are strings: pytest shortens the repr of anything else to a line,
    # which cut off the very traceback that said what went wrong.
    report = _report(procs, outputs)
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, report
        assert "already exists" not in err, report
        assert "duplicate" not in err.lower(), report
    ran = [err for _, err in outputs if "running migrations:" in err]
    assert len(ran) == 1, report
    head = _head()
    assert all(f"database at revision {head}" in out for out, _ in outputs), report
    assert asyncio.run(_versions(own_database_url)) == [head]
    # And one first signing key, not one per process that found none.
    assert asyncio.run(_count(own_database_url, "signing_keys")) == 1


def _kill(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _report(procs: list[subprocess.Popen[str]], outputs: list[tuple[str, str]]) -> str:
    """Each process's exit status, stdout and stderr in full, to read a failure by."""
    return "\n".join(
        f"--- process {i}: exit status {p.returncode}\n{out}{err}"
        for i, (p, (out, err)) in enumerate(zip(procs, outputs, strict=True))
    )


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(database.MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def _versions(url: str) -> list[str]:
    engine = database.create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


async def _count(url: str, table: str) -> int:
    engine = database.create_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    finally:
        await engine.dispose()


@pytest.mark.anyio
async def test_sqlite_lock_file_is_private_and_stays(tmp_path: Path) -> None:
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    try:
        await database.upgrade(engine)
    finally:
        await engine.dispose()
    lock = tmp_path / "k.db-migrations.lock"
    assert lock.stat().st_mode & 0o777 == 0o600


@pytest.mark.anyio
async def test_first_connection_waits_for_another_switching_a_new_file_to_wal(
    tmp_path: Path,
) -> None:
    """The concurrent test's rare failure, made certain: a new file whose write lock
    another connection holds (as a process switching it to WAL does). SQLite refused
    this connection's own switch at once, "database is locked" whatever the busy
    timeout; it must wait for the lock and then use the file."""
    path = tmp_path / "k.db"
    engine = database.create_engine(f"sqlite+aiosqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, holder.execute, ["COMMIT"])
    release.start()
    try:
        assert await database.schema_revisions(engine) == []  # refused here before
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        assert mode == "wal"
    finally:
        await engine.dispose()
        release.join()
        holder.close()


def test_wal_switch_gives_up_at_the_busy_timeout(tmp_path: Path) -> None:
    """A write lock never released: the tries stop at the busy timeout, as a wait would."""
    path = tmp_path / "k.db"
    database.create_private_file(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    conn = sqlite3.connect(path, timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            database.apply_sqlite_pragmas(conn, busy_timeout_ms=200)
        assert 0.2 <= time.monotonic() - started < 5
    finally:
        conn.close()
        holder.close()
