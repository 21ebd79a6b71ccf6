"""The token endpoint's one write: append token records, on the driver itself.

Every issued token is recorded before it is answered, so this insert is on the
hot path of every token request. Through SQLAlchemy each commit cost about
150 us of Python work on top of the database's own, and on SQLite a hop to
a worker thread cost as much again (measured with benchmarks/run.py and an
in-process loop: 555 us per single-row insert through SQLAlchemy and anyio's
thread pool, 110 us on a plain sqlite3 connection). So the insert is written
here against the DB-API driver, with one fixed statement; everything else
still goes through SQLAlchemy. The column list comes from the schema, so a
new column is picked up without touching this module.

- SQLite: the write runs on the event loop when the write lock is free
  (``BEGIN IMMEDIATE`` with no busy wait): a WAL commit with
  ``synchronous=NORMAL`` is a ``write()`` into the page cache, no ``fsync``,
  cheaper than waking a thread. When another connection holds the lock, or the
  batch is large, it goes to one writer thread whose connection waits for the
  lock. The loop's connection never checkpoints (``wal_autocheckpoint=0``);
  every so often a write is sent to the thread instead, whose connection
  checkpoints when the WAL has grown, so an ``fsync`` never stalls the loop.
- PostgreSQL on asyncpg: a kept connection's own ``executemany`` (one
  pipelined, atomic round trip; asyncpg caches the prepared statement), or
  ``execute`` for a single row, which skips executemany's batching machinery
  (a one-row insert on loopback: 355 -> 318 us, 37 us of a c=1 request).
- Any other database: SQLAlchemy, as before.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import orjson
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keyturn.storage import schema
from keyturn.storage.database import CONNECT_TIMEOUT, apply_sqlite_pragmas
from keyturn.storage.health import FULL, database_fault
from keyturn.storage.records import TokenRecord
from keyturn.storage.rows import to_row

COLUMNS = tuple(column.name for column in schema.tokens.columns)
_AUDIENCE = COLUMNS.index("audience")
INSERT_TOKEN = insert(schema.tokens)
"""SQLAlchemy's insert, one object for every call so its compiled form is reused."""
INLINE_MAX_ROWS = 64
"""Larger batches go to the writer thread, so one write never holds the loop long.

64, not 8: at concurrency 16 a batch holds about 16 rows, and sending it to the
thread left the loop idle with every request waiting on it (ES256 +10-14 %
at concurrency 16 and 64 in two A/B runs of benchmarks/run.py)."""
CHECKPOINT_EVERY = 1024
"""Inline WAL growth, in estimated pages, between two writes sent to the
(checkpointing) writer thread: about SQLite's own 1000-page autocheckpoint. A
commit writes about one page per B-tree it touches and more as rows fill
pages, so it counts ``COMMIT_PAGES`` plus its rows. Counting commits alone let
large batches grow the WAL, and the checkpoint a batch waits for, fourfold
(p99 10 -> 27 ms at concurrency 16); 2048 pages still gave 19 ms, 1024 gives
11 ms at the same throughput (A/B with benchmarks/run.py)."""
COMMIT_PAGES = 8
PAGE_SIZE = 4096
SPACE_CHECK_PAGES = 64
"""Estimated WAL pages between two looks at the disk's free space (one statvfs)."""


def token_values(token: TokenRecord) -> tuple[Any, ...]:
    """The record as one DB-API row of :data:`COLUMNS`, the audience as JSON text."""
    values = [getattr(token, name) for name in COLUMNS]
    values[_AUDIENCE] = orjson.dumps(token.audience).decode()
    return tuple(values)


async def append_tokens(conn: AsyncConnection, tokens: Sequence[TokenRecord]) -> None:
    """Insert ``tokens`` in the caller's transaction: the one SQLAlchemy token insert."""
    if tokens:
        await conn.execute(INSERT_TOKEN, [to_row(t) for t in tokens])


class TokenWriter(Protocol):
    async def write(self, tokens: Sequence[TokenRecord]) -> None: ...
    async def close(self) -> None: ...


def create_token_writer(engine: AsyncEngine) -> TokenWriter:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return SqliteTokenWriter(url.database)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        return AsyncpgTokenWriter(engine)
    return SqlAlchemyTokenWriter(engine)


def _placeholders(style: str) -> str:
    if style == "qmark":
        return ", ".join("?" for _ in COLUMNS)
    return ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))


def insert_sql(style: str) -> str:
    # Column names come from the schema and every value is bound: no injection.
    return f"INSERT INTO tokens ({', '.join(COLUMNS)}) VALUES ({_placeholders(style)})"  # noqa: S608


class SqliteTokenWriter:
    def __init__(self, path: str, *, busy_timeout: float = 30.0) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._sql = insert_sql("qmark")
        self._inline: sqlite3.Connection | None = None
        self._threaded: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._since_checkpoint = 0
        self._disk_was_full = False
        self._budget = CHECKPOINT_EVERY
        self._next_space_check = 0

    def _connect(self, *, timeout: float, autocheckpoint: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        apply_sqlite_pragmas(conn, busy_timeout_ms=int(timeout * 1000))
        if not autocheckpoint:
            conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    async def write(self, tokens: Sequence[TokenRecord]) -> None:
        rows = [token_values(t) for t in tokens]
        if self._since_checkpoint >= self._next_space_check:
            self._budget = self._wal_budget()
            self._next_space_check = self._since_checkpoint + SPACE_CHECK_PAGES
        inline = (
            len(rows) <= INLINE_MAX_ROWS
            and self._since_checkpoint < self._budget
            and not self._disk_was_full
        )
        try:
            if inline and self._try_inline(rows):
                self._since_checkpoint += COMMIT_PAGES + len(rows)
                return
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="keyturn-sqlite")
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._thread, self._write_threaded, rows)
        except sqlite3.Error as exc:
            if database_fault(exc) == FULL:
                # Once space is back, the first write shrinks the WAL to nothing
                # before it grows again: a WAL left large would fill the disk anew.
                self._disk_was_full = True
            raise
        self._since_checkpoint = 0
        self._next_space_check = 0

    def _wal_budget(self) -> int:
        """Pages the WAL may grow by before a checkpoint: `CHECKPOINT_EVERY`, or
        less when the disk has little room left.

        A checkpoint copies the WAL into the database file, which needs free
        space as large as what it copies. Once a WAL holds most of a small
        disk's free space, neither can shrink: the server stayed stuck on a
        4 MiB volume after its space was freed. Keeping the WAL within a
        quarter of the free space (and truncating it after each checkpoint
        then) leaves room for the checkpoint, always.
        """
        try:
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(self._path))).free
        except OSError:
            return CHECKPOINT_EVERY
        return max(COMMIT_PAGES, min(CHECKPOINT_EVERY, free // PAGE_SIZE // 4))

    def _try_inline(self, rows: list[tuple[Any, ...]]) -> bool:
        """Write if the lock is free this instant; ``False`` (nothing written) if it is not."""
        try:
            if self._inline is None:  # its pragmas may meet a lock too: same answer
                self._inline = self._connect(timeout=0, autocheckpoint=False)
            conn = self._inline
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            # The primary code (low byte): SQLite may report an extended one
            # such as SQLITE_BUSY_RECOVERY.
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            raise
        self._insert(conn, rows)
        return True

    def _write_threaded(self, rows: list[tuple[Any, ...]]) -> None:
        if self._threaded is None:
            self._threaded = self._connect(timeout=self._busy_timeout, autocheckpoint=True)
        if self._disk_was_full:
            self._threaded.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._disk_was_full = False
        self._threaded.execute("BEGIN IMMEDIATE")
        self._insert(self._threaded, rows)
        if self._budget < CHECKPOINT_EVERY:  # little room: give the WAL's back now
            self._threaded.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _insert(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        try:
            conn.executemany(self._sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        for conn in (self._inline, self._threaded):
            if conn is not None:
                conn.close()
        self._inline = self._threaded = None


class AsyncpgTokenWriter:
    """One asyncpg connection of its own, kept open, for token inserts only.

    Through the engine's pool each insert also paid a pre-ping round trip and
    the pool's bookkeeping (1,160 us per insert against 505 us on a kept
    connection, measured on loopback). One connection is enough: the token
    recorder already serialises this process's writes into batches. A broken
    connection (a restarted server) is replaced and the write tried once more;
    should the lost attempt have committed after all, the retry's duplicate-key
    error fails the request, whose token was never handed out.
    """

    _SQLALCHEMY_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")

    def __init__(self, engine: AsyncEngine) -> None:
        _, params = engine.dialect.create_connect_args(engine.url)
        self._params = {k: v for k, v in params.items() if k not in self._SQLALCHEMY_ONLY}
        self._sql = insert_sql("numeric")
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def write(self, tokens: Sequence[TokenRecord]) -> None:
        import asyncpg  # type: ignore[import-untyped]

        rows = [token_values(t) for t in tokens]
        async with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(
                        **{"timeout": CONNECT_TIMEOUT, **self._params}
                    )
                try:
                    if len(rows) == 1:  # 318 vs 355 us on loopback, measured
                        await self._conn.execute(self._sql, *rows[0])
                    else:
                        await self._conn.executemany(self._sql, rows)
                    return
                except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError):
                    raise  # the rows' own fault; the connection is fine
                except Exception:
                    # A lost or terminated connection shows up under several
                    # names (admin shutdown, "connection was closed", internal
                    # state errors): a fresh connection settles which it was.
                    self._drop()
                    if attempt == 2:
                        raise

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and not conn.is_closed():
                await conn.close()


class SqlAlchemyTokenWriter:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def write(self, tokens: Sequence[TokenRecord]) -> None:
        async with self._engine.begin() as conn:
            await append_tokens(conn, tokens)

    async def close(self) -> None:
        return None
