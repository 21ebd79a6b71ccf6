"""Engine creation and schema migrations.

SQLite gets WAL mode, ``synchronous=NORMAL`` (durable across process crashes,
the right trade for a token log) and a busy timeout so several workers can
share one file. Migrations are Alembic's, run on the open async engine under a
lock, so processes starting together on a new database migrate it once.

Alembic is imported only when a migration must run (or its revision be read
for the CLI): a start on a database already at `head_revision` checks that
with one SELECT and never loads Alembic, which took about a twentieth of a
cold start.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from keyturn.storage.health import database_fault

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("keyturn.storage")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
WAL_SIZE_LIMIT = 4 * 1024 * 1024
CONNECT_TIMEOUT = 5.0
"""Seconds to open a PostgreSQL connection or to wait for one from the pool."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    url = normalize_database_url(url)
    if is_sqlite(url):
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:" and not parsed.query:
            create_private_file(Path(parsed.database))
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Bounded waits: an unreachable server or an exhausted pool is a 503 in
    # seconds (storage/health.py), never a request hanging for a minute.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # Error messages (which reach logs) never quote values: they are hashes,
        # token ids and names here, but a log is the wrong place for any of them.
        hide_parameters=True,
        pool_timeout=CONNECT_TIMEOUT,
        connect_args={"timeout": CONNECT_TIMEOUT},
    )


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (an empty file is an empty
    SQLite database, and SQLite gives its -wal and -shm files the same mode).

    Its directory must exist: a typo in a database URL must not make directories
    (at the filesystem root, say); the caller creates the default data directory.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def ensure_private_dir(path: Path) -> None:
    """Create the data directory ``path`` with mode 0700 (its parents as usual) if missing."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise


def apply_sqlite_pragmas(dbapi_connection: Any, *, busy_timeout_ms: int = 30_000) -> None:
    """What every connection to a Keyturn SQLite file sets (see the module docstring)."""
    cursor = dbapi_connection.cursor()
    _switch_to_wal(cursor, busy_timeout_ms)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    # A checkpoint that resets the WAL also shrinks it to this size: a WAL
    # left at its high-water mark would hold disk space a full disk needs back.
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cursor.close()


def _switch_to_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """``PRAGMA journal_mode=WAL``, tried again while another connection switches the file.

    Switching reads the file's header and then rewrites it in the same
    transaction, and SQLite refuses a read that must become a write at once
    (SQLITE_BUSY, "database is locked"), without waiting out the busy timeout,
    while another connection holds the write lock. So processes opening a new
    file together (several ``keyturn serve`` or ``keyturn db upgrade`` on a fresh
    data directory) failed at their first connection when two switched at once,
    before any migration lock is taken. Once one switch commits, the file stays in
    WAL mode and the statement no longer writes, so trying again succeeds; the
    tries stop at the busy timeout, as a wait for the lock would.

    The sleeps block the caller's thread (the event loop, for the engine's
    connections), but only in that race at start-up: on a file already in WAL
    mode the first try succeeds.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, 0.05)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    apply_sqlite_pragmas(dbapi_connection)


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


_REVISION = re.compile(r"""^revision(?:: *str)? = ["']([\w-]+)["']$""", re.MULTILINE)
_DOWN_REVISION = re.compile(
    r"""^down_revision(?:: *[\w |\[\],]+)? = (?:None|["']([\w-]+)["'])$""", re.MULTILINE
)


@functools.cache
def head_revision() -> str | None:
    """The newest migration this version ships: the schema a server needs.

    Read from the scripts' ``revision =`` and ``down_revision =`` lines rather
    than through Alembic, whose import is the cost this saves; any script these
    lines do not describe plainly (a merge, a branch, another spelling) hands
    the question to Alembic, and a test compares both answers.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        if script.name == "__init__.py":
            continue
        source = script.read_text(encoding="utf-8")
        found, down = _REVISION.findall(source), _DOWN_REVISION.findall(source)
        if len(found) != 1 or len(down) != 1:
            return _alembic_head()
        revisions.add(found[0])
        if down[0]:
            parents.add(down[0])
    heads = revisions - parents
    if len(heads) != 1 or not parents <= revisions:
        return _alembic_head()
    return heads.pop()


def _alembic_head() -> str | None:
    head: str | None = script_directory().get_current_head()
    return head


def script_directory() -> ScriptDirectory:
    """Alembic's view of the migrations this version ships (imports Alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


async def schema_revisions(engine: AsyncEngine) -> list[str | None]:
    """The revisions the database records (Alembic's table) in one statement; none when
    it has no such table yet. (Alembic's own reader asks whether the table exists first.)"""
    async with engine.connect() as conn:
        try:
            result = await conn.execute(text("SELECT version_num FROM alembic_version"))
        except DBAPIError as exc:
            if database_fault(exc) is not None:
                raise
            return []  # answered, but no table: never migrated
        return list(result.scalars())


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there.

    Any number of processes (or hosts) may call this at once on a new database:
    they take turns under a lock, so the migrations run once and the others
    find the schema at ``revision``. Without it, concurrent ``CREATE TABLE``s
    fail with duplicate-key errors (PostgreSQL) or "table already exists"
    (SQLite). PostgreSQL: a transaction-level advisory lock on
    `MIGRATION_LOCK_KEY`, taken on the migration connection before Alembic
    starts and released by the commit that makes the new schema visible (or by
    the rollback of a failed migration), so no process reads the old version
    after another has changed it. SQLite: an exclusive ``flock`` on a file
    beside the database (SQLite runs DDL outside a transaction, so its own
    locks would not cover the whole upgrade).

    First, without a lock or Alembic: a database already at `head_revision`
    (every start but the first) is left as it is. A schema never goes back
    by itself, and Alembic records a revision only once its migration is done.
    """
    if revision == "head" and await schema_revisions(engine) == [head_revision()]:
        return
    url = engine.url
    if url.get_backend_name() == "sqlite":
        async with _file_lock(url.database):
            await _upgrade_locked(engine, revision)
        return
    await _upgrade_locked(engine, revision)


async def _upgrade_locked(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            _advisory_lock(connection)
        config = _alembic_config(connection)
        if revision == "head":
            from alembic.runtime.migration import MigrationContext

            current = MigrationContext.configure(connection).get_current_revision()
            head = script_directory().get_current_head()
            if current == head:
                return
            log.info("running migrations: %s -> %s", current or "empty database", head)
        else:
            log.info("running migrations to %s", revision)
        command.upgrade(config, revision)
        log.info("migrations done")

    async with engine.begin() as conn:
        await conn.run_sync(run)


MIGRATION_LOCK_KEY = 0x6B65797475726E01
"""The PostgreSQL advisory lock key of migrations: b"keyturn\x01" as a bigint.

Fixed, so every process and host on one database contends for the same lock;
other applications sharing the database would have to pick this very number."""


def _advisory_lock(connection: Connection) -> None:
    """Hold `MIGRATION_LOCK_KEY` until this transaction ends, saying so when it waits."""
    took = connection.execute(
        text(f"SELECT pg_try_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    ).scalar()
    if not took:
        log.info("waiting for the migration lock another process holds")
        connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))


KEYS_LOCK_KEY = MIGRATION_LOCK_KEY + 1
"""The advisory lock key of `startup_lock`: b"keyturn\x02" as a bigint."""


@contextlib.asynccontextmanager
async def startup_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """One process at a time through a start-up step that must happen once per database.

    The first signing key: processes starting together on a new database each
    found no key and created one (three keys from four processes). A session
    advisory lock on a connection of its own on PostgreSQL (the step's own
    writes go through other connections, which a transaction-level lock held
    by them would not serialise); a ``flock`` beside the file on SQLite.
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        async with _file_lock(url.database, "startup"):
            yield
        return
    if url.get_backend_name() != "postgresql":
        yield
        return
    async with engine.connect() as conn:
        await conn.execute(text(f"SELECT pg_advisory_lock({KEYS_LOCK_KEY})"))
        try:
            yield
        finally:
            await conn.execute(text(f"SELECT pg_advisory_unlock({KEYS_LOCK_KEY})"))


@contextlib.asynccontextmanager
async def _file_lock(database: str | None, purpose: str = "migrations") -> AsyncIterator[None]:
    """An exclusive ``flock`` on ``DATABASE-PURPOSE.lock`` (mode 0600), for one upgrade.

    The file stays (removing a lock file races with its next user); an in-memory
    database, or a platform without ``fcntl``, needs no lock across processes.
    """
    if not database or database == ":memory:" or database.startswith("file:") or fcntl is None:
        yield
        return
    path = Path(f"{database}-{purpose}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for the %s lock another process holds", purpose)
            await anyio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    def run(connection: Connection) -> None:
        command.downgrade(_alembic_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


def uses_postgres(url: str | None) -> bool:
    """Whether ``url`` (as an operator writes it; None is the SQLite default) is PostgreSQL."""
    return url is not None and normalize_database_url(url).startswith("postgresql")


def normalize_database_url(url: str) -> str:
    """Accept the plain URLs people copy from their provider and pick the async driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url
