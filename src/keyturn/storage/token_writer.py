"""The hot writes of the token table, on the driver itself: the token endpoint's
append of token records, and RFC 7009's revocation of one token or family.

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
  lock. Neither connection checkpoints (``wal_autocheckpoint=0``): a third, on
  a thread of its own, does it in the background once the WAL has grown
  (`CHECKPOINT_EVERY`), so no request ever waits for a checkpoint's copy and
  ``fsync``.
- PostgreSQL on asyncpg: a kept connection's own ``executemany`` (one
  pipelined, atomic round trip; asyncpg caches the prepared statement), or
  ``execute`` for a single row, which skips executemany's batching machinery
  (a one-row insert on loopback: 355 -> 318 us, 37 us of a c=1 request).
- Any other database: SQLAlchemy, as before.

A revocation is the same kind of write: through SQLAlchemy it was a
transaction of a SELECT, an UPDATE and the deny-list INSERT, each a hop to
aiosqlite's thread or a round trip. Here it is one ``UPDATE ... RETURNING``
and the deny-list insert in one transaction on SQLite (on the loop when the
lock is free, as above), and on PostgreSQL one statement (a data-modifying
CTE), so one round trip, atomic on its own. Either way the deny-list row is
committed with the revocation (what `SqlStorage` promises), and only what this
call revoked is returned.

On SQLite, revocations made in the same turn of the event loop also share one
transaction (group commit): a BEGIN and a COMMIT were about 12 % of a
revocation's event-loop time at concurrency 16. Each runs under a savepoint of
its own, so one that fails leaves the others in; each caller is answered with
its own outcome, and only once the COMMIT that holds its revocation is done
(`SqliteTokenWriter.revoke`). On PostgreSQL, those asked while one is on its
way go together in the next statement (`revoke_group_sql`), one round trip and
one WAL flush for all (`AsyncpgTokenWriter.revoke`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, get_args

import orjson
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keyturn.storage import schema
from keyturn.storage.database import CONNECT_TIMEOUT, apply_sqlite_pragmas
from keyturn.storage.health import FULL, database_fault, lock_held_elsewhere
from keyturn.storage.records import TOKEN_KIND_ACCESS, TokenRecord
from keyturn.storage.rows import to_row
from keyturn.storage.token_reader import to_token

log = logging.getLogger("keyturn.storage")

R = TypeVar("R")
RevokeBy = Literal["token_id", "family_id"]
"""What a revocation names: one token, or a refresh token's whole family."""

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
"""WAL growth, in estimated pages, between two background checkpoints: about
SQLite's own 1000-page autocheckpoint. A commit writes about one page per
B-tree it touches and more as rows fill pages, so it counts ``COMMIT_PAGES``
plus its rows. Counting commits alone let large batches grow the WAL, and each
checkpoint, fourfold.

The checkpoint used to ride on a request's write, sent to the writer thread,
whose connection checkpointed as it committed: that request, and every write
queued behind it, waited for the copy and its ``fsync``. That set issuance's
p99 (benchmarks/run.py, SQLite, A/B in one run) at 19-28 ms at concurrency 1
and 25-39 ms at 16; checkpointed in the background, 2-7 ms and 6-23 ms."""
PURGED_ROW_PAGES = 3
"""Rows a purge deletes per WAL page it writes: 500 rows wrote 162-172 pages, 2,000
wrote 499 (a 500,000-row table with every index)."""
BUSY_POLL = 0.001
"""Seconds between two tries for a lock another connection holds (`until_free`)."""
RESTART_WAIT = 0.005
"""Seconds a RESTART that meets a write or a read goes on trying, every `BUSY_POLL`,
without holding the lock in between (a busy timeout would hold off writers)."""
MISSED_RESTARTS = 4
"""Background checkpoints in a row that may fail to restart the WAL before a write
waits, on the writer thread, for a TRUNCATE checkpoint that does."""
COMMIT_PAGES = 8
PAGE_SIZE = 4096
SPACE_CHECK_PAGES = 64
"""Estimated WAL pages between two looks at the disk's free space (one statvfs)."""


def token_values(token: TokenRecord) -> tuple[Any, ...]:
    """The record as one DB-API row of :data:`COLUMNS`, the audience as JSON text."""
    values = [getattr(token, name) for name in COLUMNS]
    values[_AUDIENCE] = orjson.dumps(token.audience).decode()
    return tuple(values)


def denied_rows(records: Sequence[TokenRecord], now: int) -> list[tuple[str, int, int]]:
    """The deny-list rows (token_id, revoked_at, expires_at) of the live access tokens
    among ``records``, just revoked: the one rule of what goes on the deny-list."""
    return [
        (r.token_id, now, r.expires_at)
        for r in records
        if r.kind == TOKEN_KIND_ACCESS and r.expires_at > now
    ]


def revoke_sql(by: RevokeBy, style: str) -> str:
    """Revoke what ``by`` names and is not revoked yet, answering the rows it revoked.

    On PostgreSQL the deny-list insert rides in the same statement, so the
    whole revocation is one round trip and atomic; SQLite has no DML in a
    CTE, so its caller inserts them in the same transaction (`DENY_SQL`).
    """
    # Column names come from the schema and this module; every value is bound.
    columns = ", ".join(COLUMNS)
    if style == "qmark":
        return (
            f"UPDATE tokens SET revoked_at = ? WHERE {by} = ? AND revoked_at IS NULL "  # noqa: S608
            f"RETURNING {columns}"
        )
    return (
        f"WITH revoked AS (UPDATE tokens SET revoked_at = $1 "  # noqa: S608
        f"WHERE {by} = $2 AND revoked_at IS NULL RETURNING {columns}), "
        "denied AS (INSERT INTO denylist (token_id, revoked_at, expires_at) "
        "SELECT token_id, $1, expires_at FROM revoked "
        f"WHERE kind = '{TOKEN_KIND_ACCESS}' AND expires_at > $1) "
        f"SELECT {columns} FROM revoked"
    )


def revoke_statements(style: str) -> dict[RevokeBy, str]:
    """`revoke_sql` for each thing a revocation may name, in ``style``."""
    return {by: revoke_sql(by, style) for by in get_args(RevokeBy)}


def revoke_group_sql() -> str:
    """PostgreSQL: a group of revocations in one statement, as if made one by one.

    ``$1``, ``$2`` and ``$3`` are the group's arrays of what each names
    (`RevokeBy`), its value and its ``now``. A token that more than one of them
    names is revoked by the first (the same outcome as one after the other);
    each answered row carries the 1-based position of the revocation that
    revoked it, so every caller gets only its own.
    """
    # Column names come from the schema and this module; every value is bound.
    returned = ", ".join(f"tokens.{c}" for c in COLUMNS)
    named = " UNION ALL ".join(
        f"SELECT t.token_id, a.at, a.n FROM asked a JOIN tokens t ON t.{by} = a.val "  # noqa: S608
        f"WHERE a.by_col = '{by}' AND t.revoked_at IS NULL"
        for by in get_args(RevokeBy)
    )
    return (
        "WITH asked AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) "  # noqa: S608
        "WITH ORDINALITY AS a(by_col, val, at, n)), "
        f"matched AS ({named}), "
        "target AS (SELECT DISTINCT ON (token_id) token_id, at, n FROM matched "
        "ORDER BY token_id, n), "
        "revoked AS (UPDATE tokens SET revoked_at = target.at FROM target "
        "WHERE tokens.token_id = target.token_id AND tokens.revoked_at IS NULL "
        f"RETURNING target.n, {returned}), "
        "denied AS (INSERT INTO denylist (token_id, revoked_at, expires_at) "
        "SELECT token_id, revoked_at, expires_at FROM revoked "
        f"WHERE kind = '{TOKEN_KIND_ACCESS}' AND expires_at > revoked_at) "
        f"SELECT n, {', '.join(COLUMNS)} FROM revoked"
    )


DENY_SQL = "INSERT INTO denylist (token_id, revoked_at, expires_at) VALUES (?, ?, ?)"


async def append_tokens(conn: AsyncConnection, tokens: Sequence[TokenRecord]) -> None:
    """Insert ``tokens`` in the caller's transaction: the one SQLAlchemy token insert."""
    if tokens:
        await conn.execute(INSERT_TOKEN, [to_row(t) for t in tokens])


class TokenWriter(Protocol):
    async def write(self, tokens: Sequence[TokenRecord]) -> None: ...

    async def revoke(self, by: RevokeBy, value: str, now: int) -> list[TokenRecord] | None:
        """What this call revoked, its live access tokens put on the deny-list in
        the same transaction; None: no driver path here, SQLAlchemy's does it."""
        ...

    async def purge(self, cutoff: int, batch: int) -> int | None:
        """Delete up to ``batch`` token rows expired or revoked before ``cutoff``: how
        many went; None: no driver path here, SQLAlchemy's does it."""
        ...

    async def close(self) -> None: ...


def create_token_writer(engine: AsyncEngine) -> TokenWriter:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return SqliteTokenWriter(url.database)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        return AsyncpgTokenWriter(engine)
    return SqlAlchemyTokenWriter(engine)


def connect_sqlite(path: str, *, timeout: float, autocheckpoint: bool) -> sqlite3.Connection:
    """A writer's own connection: autocommit, Keyturn's pragmas, and no automatic
    checkpoint when ``autocheckpoint`` is off (the loop's connection)."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    apply_sqlite_pragmas(conn, busy_timeout_ms=int(timeout * 1000))
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


def _placeholders(style: str) -> str:
    if style == "qmark":
        return ", ".join("?" for _ in COLUMNS)
    return ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))


PURGE_SQL = (
    "DELETE FROM tokens WHERE rowid IN (SELECT rowid FROM tokens "
    "WHERE expires_at < ? OR revoked_at < ? LIMIT ?)"
)
"""SQLite: one batch of the purge. By rowid, the table's own key: no lookup of
``token_id`` in its index for each row. The two conditions are two index
ranges (``MULTI-INDEX OR``), so finding a batch reads no row that stays."""


def insert_sql(style: str) -> str:
    # Column names come from the schema and every value is bound: no injection.
    return f"INSERT INTO tokens ({', '.join(COLUMNS)}) VALUES ({_placeholders(style)})"  # noqa: S608


class _Busy:
    """The write lock was taken this instant: nothing was done on the loop."""

    __slots__ = ()


_BUSY = _Busy()


def _run_checkpoint(conn: sqlite3.Connection, mode: str) -> object:
    """A checkpoint; `_BUSY` if a writer or a reader kept it from finishing."""
    busy = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()[0][0]
    return _BUSY if busy else None


def until_free(attempt: Callable[[], object], seconds: float) -> bool:
    """``attempt`` until it does not meet another connection's lock, every
    `BUSY_POLL` seconds, for ``seconds`` at most; then a lock error is raised,
    and a checkpoint kept from finishing (`_BUSY`) is False.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms and on between
    tries: a write that met a 9 ms lock (a purge batch, a checkpoint's
    RESTART) waited 18 ms, twice as long as the lock was held.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            if attempt() is not _BUSY:
                return True
        except sqlite3.OperationalError as exc:
            if not lock_held_elsewhere(exc) or time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(BUSY_POLL)


class SqliteTokenWriter:
    def __init__(self, path: str, *, busy_timeout: float = 30.0) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._sql = insert_sql("qmark")
        self._revoke_sql = revoke_statements("qmark")
        self._inline: sqlite3.Connection | None = None
        self._threaded: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._checkpointing: sqlite3.Connection | None = None
        self._checkpointer: ThreadPoolExecutor | None = None
        self._checkpoint: asyncio.Future[bool] | None = None  # the one under way
        self._missed_restarts = 0
        self._since_checkpoint = 0
        self._disk_was_full = False
        self._budget = CHECKPOINT_EVERY
        self._next_space_check = 0
        self._queued: list[_Revocation] = []  # this turn's revocations, not yet begun
        self._groups: set[asyncio.Task[None]] = set()  # groups being committed

    async def write(self, tokens: Sequence[TokenRecord]) -> None:
        rows = [token_values(t) for t in tokens]
        sql = self._sql

        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany(sql, rows)

        await self._transact(insert, len(rows))

    async def purge(self, cutoff: int, batch: int) -> int:
        """One batch, always on the writer thread: a write that meets its lock is sent
        there too, and runs as soon as the batch commits, with no busy wait."""

        def purge(conn: sqlite3.Connection) -> int:
            return conn.execute(PURGE_SQL, (cutoff, cutoff, batch)).rowcount

        removed = await self._transact(purge, batch, inline=False)
        self._wrote(COMMIT_PAGES + removed // PURGED_ROW_PAGES)
        return removed

    async def revoke(self, by: RevokeBy, value: str, now: int) -> list[TokenRecord]:
        """Revoke in a group with the other revocations of this loop turn.

        The group is committed by a task of its own, so a caller that goes away
        (a client that hung up) neither stops it nor takes the others' answers
        with it; its revocation is still committed.
        """
        sql = self._revoke_sql[by]

        def revoke(conn: sqlite3.Connection) -> list[TokenRecord]:
            records = [to_token(row) for row in conn.execute(sql, (now, value)).fetchall()]
            denied = denied_rows(records, now)
            if denied:
                conn.executemany(DENY_SQL, denied)
            return records

        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[TokenRecord]] = loop.create_future()
        self._queued.append(_Revocation(revoke, answer))
        if len(self._queued) == 1:
            loop.call_soon(self._begin_group)  # after every revocation of this turn
        return await answer

    def _begin_group(self) -> None:
        group, self._queued = self._queued, []
        if group:
            task = asyncio.ensure_future(self._commit_group(group))
            self._groups.add(task)
            task.add_done_callback(self._groups.discard)

    async def _commit_group(self, group: list[_Revocation]) -> None:
        """One transaction for ``group``, a savepoint each; every caller gets its own
        records, or the error of its own revocation, or the transaction's."""

        def each(conn: sqlite3.Connection) -> list[list[TokenRecord] | sqlite3.Error]:
            outcomes: list[list[TokenRecord] | sqlite3.Error] = []
            for revocation in group:
                conn.execute("SAVEPOINT revocation")
                try:
                    outcomes.append(revocation.work(conn))
                except sqlite3.Error as exc:
                    if not conn.in_transaction:
                        raise  # SQLite ended the whole transaction (a full disk, I/O)
                    conn.execute("ROLLBACK TO revocation")
                    outcomes.append(exc)
                conn.execute("RELEASE revocation")
            return outcomes

        try:
            outcomes = await self._transact(each, len(group))
        except asyncio.CancelledError:
            for revocation in group:
                revocation.answer.cancel()
            raise
        except Exception as exc:
            for revocation in group:
                if not revocation.answer.done():
                    revocation.answer.set_exception(exc)
            return
        for revocation, outcome in zip(group, outcomes, strict=True):
            if revocation.answer.done():
                continue  # its caller was cancelled: committed all the same
            if isinstance(outcome, sqlite3.Error):
                revocation.answer.set_exception(outcome)
            else:
                revocation.answer.set_result(outcome)

    async def _transact(
        self, work: Callable[[sqlite3.Connection], R], rows: int, *, inline: bool = True
    ) -> R:
        """Run ``work`` in one write transaction: on the loop if the lock is free this
        instant and the write is small, else on the writer thread.

        ``rows`` counts toward the WAL's growth unless ``inline`` is off: such a
        caller counts what it wrote itself (`_wrote`).
        """
        if self._since_checkpoint >= self._next_space_check:
            self._budget = self._wal_budget()
            self._next_space_check = self._since_checkpoint + SPACE_CHECK_PAGES
        # Short of disk, or with the WAL not restarted for a while, a write that
        # finds the WAL full waits for a checkpoint that truncates it.
        truncate = self._disk_was_full or (
            self._since_checkpoint >= self._budget
            and (self._budget < CHECKPOINT_EVERY or self._missed_restarts >= MISSED_RESTARTS)
        )
        try:
            if inline and rows <= INLINE_MAX_ROWS and not truncate:
                done = self._try_inline(work)
                if not isinstance(done, _Busy):
                    self._wrote(COMMIT_PAGES + rows)
                    return done
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="keyturn-sqlite")
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._thread, self._write_threaded, work, truncate)
        except sqlite3.Error as exc:
            self._note_fault(exc)
            raise
        if truncate:
            self._since_checkpoint = self._next_space_check = self._missed_restarts = 0
        elif inline:
            self._wrote(COMMIT_PAGES + rows)
        return result

    def _note_fault(self, exc: sqlite3.Error) -> None:
        if database_fault(exc) == FULL:
            # Once space is back, the first write shrinks the WAL to nothing
            # before it grows again: a WAL left large would fill the disk anew.
            self._disk_was_full = True

    def _wrote(self, pages: int) -> None:
        """Count ``pages`` more in the WAL; past the budget, start a checkpoint."""
        self._since_checkpoint += pages
        if (
            self._since_checkpoint >= self._budget
            and self._checkpoint is None
            and self._budget >= CHECKPOINT_EVERY  # else the next write truncates
            and self._missed_restarts < MISSED_RESTARTS
        ):
            if self._checkpointer is None:
                self._checkpointer = ThreadPoolExecutor(
                    1, thread_name_prefix="keyturn-sqlite-checkpoint"
                )
            loop = asyncio.get_running_loop()
            self._checkpoint = loop.run_in_executor(self._checkpointer, self._checkpoint_wal)
            self._checkpoint.add_done_callback(self._checkpointed)
            self._since_checkpoint = self._next_space_check = 0

    def _checkpoint_wal(self) -> bool:
        """Copy the WAL into the database, then have the next write start it afresh.

        PASSIVE copies while writes go on, so it never finishes with nothing left
        to copy while they come steadily, and a WAL restarts only from a write
        that finds it all copied: checkpoints from a connection that does not
        write let it grow without end (1.6 GB in 10 s of 16 writers). So a
        RESTART follows, which holds off writers only to copy the few pages
        written during the PASSIVE one. It never waits on a lock
        (``timeout=0``): a writer, or a reader still on the old pages, makes it
        try again for a moment (`RESTART_WAIT`), then count a miss
        (`MISSED_RESTARTS`).
        """
        if self._checkpointing is None:
            self._checkpointing = connect_sqlite(self._path, timeout=0, autocheckpoint=False)
        conn = self._checkpointing
        _run_checkpoint(conn, "PASSIVE")
        return until_free(lambda: _run_checkpoint(conn, "RESTART"), RESTART_WAIT)

    def _checkpointed(self, done: asyncio.Future[bool]) -> None:
        self._checkpoint = None
        if done.cancelled():
            return
        exc = done.exception()
        if isinstance(exc, sqlite3.Error):
            self._note_fault(exc)
        elif exc is not None:
            log.error("a background checkpoint of the SQLite WAL failed", exc_info=exc)
        restarted = exc is None and done.result()
        self._missed_restarts = 0 if restarted else self._missed_restarts + 1

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

    def _try_inline(self, work: Callable[[sqlite3.Connection], R]) -> R | _Busy:
        """Do ``work`` if the lock is free this instant; `_BUSY` (nothing done) if not."""
        try:
            if self._inline is None:  # its pragmas may meet a lock too: same answer
                self._inline = connect_sqlite(self._path, timeout=0, autocheckpoint=False)
            conn = self._inline
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if lock_held_elsewhere(exc):
                return _BUSY
            raise
        return self._commit(conn, work)

    def _write_threaded(self, work: Callable[[sqlite3.Connection], R], truncate: bool) -> R:
        if self._threaded is None:
            conn = connect_sqlite(self._path, timeout=self._busy_timeout, autocheckpoint=False)
            conn.execute("PRAGMA busy_timeout=0")  # it waits in `until_free` instead
            self._threaded = conn
        conn, wait = self._threaded, self._busy_timeout
        if self._disk_was_full:
            until_free(lambda: _run_checkpoint(conn, "TRUNCATE"), wait)
            self._disk_was_full = False
        until_free(lambda: conn.execute("BEGIN IMMEDIATE"), wait)
        result = self._commit(conn, work)
        if truncate or self._budget < CHECKPOINT_EVERY:  # little room: give it back now
            until_free(lambda: _run_checkpoint(conn, "TRUNCATE"), wait)
        return result

    @staticmethod
    def _commit(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], R]) -> R:
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    async def close(self) -> None:
        self._begin_group()  # revocations queued this very turn
        while self._groups:  # answered before the connections go
            await asyncio.gather(*self._groups, return_exceptions=True)
        for executor in (self._thread, self._checkpointer):
            if executor is not None:
                executor.shutdown(wait=True)
        self._thread = self._checkpointer = None
        for conn in (self._inline, self._threaded, self._checkpointing):
            if conn is not None:
                conn.close()
        self._inline = self._threaded = self._checkpointing = None


class _Revocation(NamedTuple):
    work: Callable[[sqlite3.Connection], list[TokenRecord]]
    answer: asyncio.Future[list[TokenRecord]]


class _Asked(NamedTuple):
    by: RevokeBy
    value: str
    now: int
    answer: asyncio.Future[list[TokenRecord]]


GROUP_MAX = 256
"""The most revocations one PostgreSQL statement takes; the rest wait for the next."""


class AsyncpgTokenWriter:
    """One asyncpg connection of its own, kept open, for token inserts only.

    Through the engine's pool each insert also paid a pre-ping round trip and
    the pool's bookkeeping (1,160 us per insert against 505 us on a kept
    connection, measured on loopback). One connection is enough: the token
    recorder already serialises this process's writes into batches. A broken
    connection (a restarted server) is replaced and the write tried once more;
    should the lost attempt have committed after all, the retry's duplicate-key
    error fails the request, whose token was never handed out.

    Revocations group-commit: those asked while one is on its way are made
    together in the next statement (`revoke_group_sql`), one round trip and one
    WAL flush for all, where one at a time each paid both behind the others
    (1,650-1,950 revocations/s at concurrency 16 here, 2,800-3,550 grouped).
    """

    _SQLALCHEMY_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")

    def __init__(self, engine: AsyncEngine) -> None:
        _, params = engine.dialect.create_connect_args(engine.url)
        self._params = {k: v for k, v in params.items() if k not in self._SQLALCHEMY_ONLY}
        self._sql = insert_sql("numeric")
        self._revoke_sql = revoke_statements("numeric")
        self._revoke_group_sql = revoke_group_sql()
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._asked: list[_Asked] = []  # revocations not yet sent
        self._sender: asyncio.Task[None] | None = None

    async def write(self, tokens: Sequence[TokenRecord]) -> None:
        rows = [token_values(t) for t in tokens]
        sql = self._sql

        async def insert(conn: Any) -> None:
            if len(rows) == 1:  # 318 vs 355 us on loopback, measured
                await conn.execute(sql, *rows[0])
            else:
                await conn.executemany(sql, rows)

        await self._on_connection(insert)

    async def revoke(self, by: RevokeBy, value: str, now: int) -> list[TokenRecord]:
        """Revoke in a group with the others asked meanwhile (see the class).

        Sent by a task of its own, so a caller that goes away (a client that
        hung up) neither stops its revocation nor takes the others' answers
        with it. A lone revocation is sent on the next turn of the loop.
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[TokenRecord]] = loop.create_future()
        self._asked.append(_Asked(by, value, now, answer))
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_asked())
        return await answer

    async def _send_asked(self) -> None:
        group: list[_Asked] = []
        try:
            while self._asked:
                group, self._asked = self._asked[:GROUP_MAX], self._asked[GROUP_MAX:]
                await self._revoke_group(group)
        except BaseException:
            left, self._asked = [*group, *self._asked], []
            _cancel_all(left)  # answered ones stay answered: cancel() leaves them be
            raise
        finally:
            self._sender = None

    async def _revoke_group(self, group: list[_Asked]) -> None:
        """Every caller gets its own records, or the error its revocation met."""
        import asyncpg  # type: ignore[import-untyped]

        try:
            if len(group) == 1:
                outcomes: list[list[TokenRecord]] = [await self._revoke_one(group[0])]
            else:
                outcomes = await self._revoke_together(group)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
            if len(group) == 1:
                _answer_all(group, exc)
                return
            # One of them is at fault (its rows'): one by one, so only its caller hears of it.
            for asked in group:
                try:
                    _answer(asked, await self._revoke_one(asked))
                except Exception as own:
                    _answer_all([asked], own)
            return
        except Exception as exc:
            _answer_all(group, exc)
            return
        for asked, outcome in zip(group, outcomes, strict=True):
            _answer(asked, outcome)

    async def _revoke_one(self, asked: _Asked) -> list[TokenRecord]:
        """One statement: should a lost connection's attempt have committed after
        all, the retry revokes nothing more and answers ``[]``; its deny-list rows
        are committed, unpublished, and the deny-list publisher's sweep takes them."""
        sql = self._revoke_sql[asked.by]

        async def revoke(conn: Any) -> list[TokenRecord]:
            rows = await conn.fetch(sql, asked.now, asked.value)
            return [to_token(row.values()) for row in rows]

        return await self._on_connection(revoke)

    async def _revoke_together(self, group: list[_Asked]) -> list[list[TokenRecord]]:
        """`_revoke_one` for a whole group, in one statement (retried the same way)."""
        args = ([a.by for a in group], [a.value for a in group], [a.now for a in group])
        sql = self._revoke_group_sql

        async def revoke(conn: Any) -> list[list[TokenRecord]]:
            outcomes: list[list[TokenRecord]] = [[] for _ in group]
            for row in await conn.fetch(sql, *args):
                n, *values = row.values()
                outcomes[n - 1].append(to_token(values))
            return outcomes

        return await self._on_connection(revoke)

    async def _on_connection(self, work: Callable[[Any], Awaitable[R]]) -> R:
        import asyncpg

        async with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(
                        **{"timeout": CONNECT_TIMEOUT, **self._params}
                    )
                try:
                    return await work(self._conn)
                except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError):
                    raise  # the rows' own fault; the connection is fine
                except Exception:
                    # A lost or terminated connection shows up under several
                    # names (admin shutdown, "connection was closed", internal
                    # state errors): a fresh connection settles which it was.
                    self._drop()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def purge(self, cutoff: int, batch: int) -> None:
        """SQLAlchemy's: a batch on this connection would hold up the inserts."""
        return None

    async def close(self) -> None:
        while self._sender is not None:  # answer what was asked before the connection goes
            await asyncio.gather(self._sender, return_exceptions=True)
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and not conn.is_closed():
                await conn.close()


def _answer(asked: _Asked, records: list[TokenRecord]) -> None:
    if not asked.answer.done():  # else its caller went away: committed all the same
        asked.answer.set_result(records)


def _answer_all(group: Sequence[_Asked], exc: BaseException) -> None:
    for asked in group:
        if not asked.answer.done():
            asked.answer.set_exception(exc)


def _cancel_all(group: Sequence[_Asked]) -> None:
    """The sender itself was cancelled (the loop is going): no answer will come."""
    for asked in group:
        asked.answer.cancel()


class SqlAlchemyTokenWriter:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def write(self, tokens: Sequence[TokenRecord]) -> None:
        async with self._engine.begin() as conn:
            await append_tokens(conn, tokens)

    async def revoke(self, by: RevokeBy, value: str, now: int) -> None:
        return None

    async def purge(self, cutoff: int, batch: int) -> None:
        return None

    async def close(self) -> None:
        return None
