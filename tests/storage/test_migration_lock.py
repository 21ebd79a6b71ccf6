"""Processes starting together on a new database migrate it once, under a lock.

Four real ``keyturn db upgrade`` processes are held at a start gate until all
have imported Keyturn, then released at once against one empty database.
Without the lock, their concurrent ``CREATE TABLE``s fail (PostgreSQL: a
duplicate key in ``pg_type``; SQLite: "table ... already exists").
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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
            assert time.monotonic() < deadline, "the processes did not reach the gate"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        gate.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "already exists" not in err, err
        assert "duplicate" not in err.lower(), err
    ran = [err for _, err in outputs if "running migrations:" in err]
    assert len(ran) == 1, [err for _, err in outputs]
    head = _head()
    assert all(f"database at revision {head}" in out for out, _ in outputs), outputs
    assert asyncio.run(_versions(own_database_url)) == [head]
    # And one first signing key, not one per process that found none.
    assert asyncio.run(_count(own_database_url, "signing_keys")) == 1


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
