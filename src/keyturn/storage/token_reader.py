"""The token lookups of introspection and revocation, on the driver itself.

Every introspection reads its token's row, so that a revocation committed
through any process is seen at once by every process (no cache of liveness
to keep in step). Through SQLAlchemy that read cost far more than the
database's own work: on SQLite five hand-offs to aiosqlite's worker thread
(about 0.8 ms a lookup, against 7.6 us for a plain ``sqlite3`` SELECT on a
kept connection); on PostgreSQL the pool's pre-ping, ``BEGIN`` and the query,
four round trips. So, like `token_writer`'s insert, the two lookups are
written here against the DB-API driver, with fixed statements whose column
list comes from the schema:

- SQLite: a kept connection, used on the event loop. A read in WAL mode
  does not wait for writers, so it is a few microseconds of work; in the
  rare case it meets a lock (WAL recovery, a connection in exclusive mode)
  it does not wait on the loop: ``None`` says "ask SQLAlchemy instead".
  Records it found are kept while the database is unchanged: every commit,
  by any connection of any process, rewrites the WAL-index header in the
  ``-shm`` file, which the reader maps and compares (or, where it cannot,
  ``PRAGMA data_version``, which SQLite derives from the same header); see
  `SqliteTokenReader`.
- PostgreSQL on asyncpg: a few kept connections (`ReadConnections`, not
  asyncpg's pool: see there why), one round trip per lookup, or per batch
  of concurrent lookups by id (`AsyncpgTokenReader`); asyncpg prepares each
  of the three read-only statements once per connection. When
  a connection fails, all of them are replaced and the read is tried once
  more on a new one.
- Any other database (or an in-memory SQLite): SQLAlchemy, as before.

Each SELECT runs in autocommit, so it sees every transaction committed
before it started: exactly what the SQLAlchemy read saw.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from keyturn.storage import schema
from keyturn.storage.database import CONNECT_TIMEOUT
from keyturn.storage.health import lock_held_elsewhere
from keyturn.storage.records import TokenRecord

R = TypeVar("R")
COLUMNS = tuple(column.name for column in schema.tokens.columns)
_AUDIENCE = COLUMNS.index("audience")
POOL_SIZE = 4
"""asyncpg connections for reads: enough that 16 concurrent introspections
keep each busy without a queue of round trips behind one connection."""


def select_sql(where: str) -> str:
    # Column names come from the schema, the condition from this module; every
    # value is bound: no injection.
    return f"SELECT {', '.join(COLUMNS)} FROM tokens WHERE {where}"  # noqa: S608


def _by_hash(placeholder: str) -> str:
    # The partial index's own condition, so the planner can use it.
    return select_sql(f"token_hash = {placeholder} AND {schema.LOOKED_UP_BY_HASH}")


def to_token(row: Any) -> TokenRecord:
    """A row of :data:`COLUMNS` as a record (the audience column holds JSON text)."""
    values = list(row)
    audience = values[_AUDIENCE]
    if isinstance(audience, str):
        audience = orjson.loads(audience)
    values[_AUDIENCE] = tuple(audience)
    return TokenRecord(*values)


class TokenReader(Protocol):
    """A lookup answers the record, None (no such token), or `NOT_READ`: not
    answered here without waiting, so the caller asks SQLAlchemy."""

    async def by_id(self, token_id: str) -> TokenRecord | NotRead | None: ...
    async def by_hash(self, token_hash: str) -> TokenRecord | NotRead | None: ...
    async def close(self) -> None: ...


class NotRead:
    """The reader could not answer without waiting; SQLAlchemy's read takes over."""

    __slots__ = ()


NOT_READ = NotRead()


def create_token_reader(engine: AsyncEngine) -> TokenReader | None:
    """The fast reader for ``engine``'s database, or None where there is none."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return SqliteTokenReader(url.database)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        return AsyncpgTokenReader(engine)
    return None


MEMO_SIZE = 4096
"""Records the SQLite reader keeps between commits: the live tokens that one
process is asked about (about 1 kB each); when full, it starts again."""
WAL_INDEX_HEADER = 96
"""The two copies of the WAL-index header at the start of the ``-shm`` file
(https://www.sqlite.org/walformat.html, 2.1): 48 bytes each, written by every
commit, second copy first."""


_MAPPED: dict[str, tuple[int, mmap.mmap | None]] = {}
"""The WAL-index header of each ``-shm`` file mapped in this process, with the
descriptor it was mapped through: closed only once the file is gone."""


def header_mapping(path: str) -> mmap.mmap | None:
    """The first `WAL_INDEX_HEADER` bytes of the ``-shm`` file ``path``, mapped
    read-only; None if the file is shorter. Mapped once per file and process.

    Closing any descriptor of a file drops every POSIX lock the process holds
    on it, SQLite's own included, and a Python ``mmap`` closes a duplicate of
    its descriptor when it is closed or collected. SQLite's shared lock on the
    ``-shm`` file is what tells any other process that the WAL-index is in
    use: once this reader had closed its descriptor, the next process to open
    the database (a ``keyturn`` command beside the server) rebuilt the file,
    and the server died of SIGBUS reading SQLite's mapping of it (3 of 10
    runs of benchmarks/table_growth.py; it could have corrupted the database
    as well). So the mapping and its descriptor stay open for as long as the
    file is there (`release_mappings`).
    """
    release_mappings()
    kept = _MAPPED.get(path)
    if kept is not None:
        return kept[1]
    if os.stat(path).st_size < WAL_INDEX_HEADER:
        return None
    fd = os.open(path, os.O_RDONLY)
    mapping: mmap.mmap | None = None
    try:
        mapping = mmap.mmap(fd, WAL_INDEX_HEADER, access=mmap.ACCESS_READ)
    finally:
        _MAPPED[path] = (fd, mapping)  # kept even if it failed: not closed
    return mapping


def release_mappings() -> None:
    """Close the mappings of ``-shm`` files deleted (or made anew) since.

    SQLite deletes the file when the last connection of any process closes,
    so no lock of a connection is lost with it; one made anew is another file.
    """
    for path, (fd, mapping) in list(_MAPPED.items()):
        try:
            mapped, now = os.fstat(fd), os.stat(path)
            if (mapped.st_dev, mapped.st_ino) == (now.st_dev, now.st_ino):
                continue
        except FileNotFoundError:
            pass
        except OSError:
            continue  # unsure: keep it
        del _MAPPED[path]
        if mapping is not None:
            mapping.close()
        os.close(fd)


class SqliteTokenReader:
    """Lookups on a kept ``sqlite3`` connection, with the records found remembered
    until the database changes.

    A resource server introspects the same few tokens over and over, while
    nothing is written between most of those reads. So each lookup first asks
    whether anything was committed since the records were read: unchanged, a
    remembered record is exactly the row; changed, everything remembered is
    dropped and the row is read. The question is asked before the row is
    read, so a commit between the two only makes the next lookup read again.
    Only records found are remembered: a miss is read every time, so unknown
    tokens cannot fill the memory. ``memo_size=0`` turns the memory off.

    How "anything committed" is told: the database is in WAL mode, where every
    commit, by any connection of any process, rewrites the WAL-index header at
    the start of the ``-shm`` file (its change counter, at least) before it
    returns. SQLite itself tells a change by comparing that header with the
    copy it read last; ``PRAGMA data_version`` is that comparison, counted.
    The reader compares the header's bytes itself, through a read-only
    ``mmap`` of the file: 0.1 us, where the ``PRAGMA`` (a read transaction's
    begin and end, with their file locks) took 4 us alone and about 12 us of
    an introspection's 85 under load. A header caught mid-write (its two
    copies differ) counts as a change. Where the file cannot be mapped, the
    ``PRAGMA`` is asked instead. This connection keeps the file in use, so
    SQLite never truncates it while it is mapped; it is unmapped before the
    connection closes.
    """

    def __init__(self, path: str, memo_size: int = MEMO_SIZE) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._by_id = select_sql("token_id = ?")
        self._by_hash = _by_hash("?")
        self._memo_size = memo_size
        self._memo: dict[tuple[bool, str], TokenRecord] = {}
        self._version: object = None  # the header (or data_version) the memo holds for
        self._shm: mmap.mmap | None = None
        self._map_tried = False  # for this connection

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # timeout=0: a read that would wait never blocks the event loop.
            conn = sqlite3.connect(
                self._path, timeout=0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA query_only=ON")
            self._conn = conn
            self._forget(None)  # data_version is counted per connection
        return self._conn

    def _forget(self, version: object) -> None:
        self._memo.clear()
        self._version = version

    def _map_header(self, conn: sqlite3.Connection) -> None:
        """Map the WAL-index header, once per connection, after a read made sure the
        ``-shm`` file is in use; on any failure the ``PRAGMA`` stays the check.

        Only in WAL mode, which nobody can leave while this connection is open
        (that takes an exclusive lock on the database file, and a WAL reader
        holds a shared one for as long as it is open).
        """
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        self._map_tried = True  # (not when that read failed: the next lookup tries again)
        if mode != "wal":
            return
        try:
            self._shm = header_mapping(self._path + "-shm")
        except (OSError, ValueError):
            self._shm = None

    def _changes(self, conn: sqlite3.Connection) -> object:
        """What the last commit left: equal values mean nothing was committed between."""
        if self._shm is None:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if self._map_tried:
                return version
            self._map_header(conn)  # the PRAGMA's read has opened the -shm file
            if self._shm is None:
                return version
        header = self._shm[:WAL_INDEX_HEADER]
        # Two unequal copies: a commit is writing it; unlike anything kept.
        return header if header[:48] == header[48:] else object()

    def _fetch(self, sql: str, value: str, by_id: bool) -> TokenRecord | NotRead | None:
        key = (by_id, value)
        try:
            conn = self._connection()
            if self._memo_size:
                version = self._changes(conn)
                if version != self._version:
                    self._forget(version)
                elif (found := self._memo.get(key)) is not None:
                    return found
            row = conn.execute(sql, (value,)).fetchone()
        except sqlite3.OperationalError as exc:
            if lock_held_elsewhere(exc):
                return NOT_READ
            raise
        if row is None:
            return None
        record = to_token(row)
        if self._memo_size:
            if len(self._memo) >= self._memo_size:
                self._memo.clear()
            self._memo[key] = record
        return record

    async def by_id(self, token_id: str) -> TokenRecord | NotRead | None:
        return self._fetch(self._by_id, token_id, True)

    async def by_hash(self, token_hash: str) -> TokenRecord | NotRead | None:
        return self._fetch(self._by_hash, token_hash, False)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._shm = None  # the mapping stays while the file does (`header_mapping`)
        self._map_tried = False
        self._forget(None)
        if conn is not None:
            conn.close()


class ReadConnections:
    """Up to ``size`` asyncpg connections, opened when first needed, each lent to
    one lookup at a time.

    Written here rather than using asyncpg's ``Pool``, which costs more than
    the round trip it wraps: under uvloop, a ``fetchrow`` on a held connection
    took 60 us of the event loop's CPU, and the same through ``pool.acquire()``
    110 us (reset, listener and transaction bookkeeping, per-acquire timeouts).
    These connections run only two read-only prepared statements in
    autocommit, so there is nothing to reset or check between two lookups.

    A lookup that finds every connection lent waits its turn (first come,
    first served). A failed connection is `discard`-ed; `expire` then drops the
    others too, idle at once and lent ones when they come back, since what
    broke one (a restart, a failover) broke them all. Nothing is opened ahead
    of need, so an outage costs no retry loop.
    """

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._connect = connect
        self._size = size
        self._idle: list[Any] = []
        self._born: dict[Any, int] = {}  # each connection (open or lent): its generation
        self._opening = 0
        self._generation = 0
        self._waiters: deque[asyncio.Future[Any]] = deque()

    @property
    def count(self) -> int:
        """Connections open, being opened, or lent."""
        return len(self._born) + self._opening

    async def acquire(self) -> Any:
        while True:
            if self._idle:
                return self._idle.pop()  # the most recent: its socket is warm
            if self.count < self._size:
                self._opening += 1
                try:
                    conn = await self._connect()
                except BaseException:
                    self._opening -= 1
                    self._pass_on(None)  # a waiter may try in its place
                    raise
                self._opening -= 1
                self._born[conn] = self._generation
                return conn
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on(waiter.result())  # handed over just as it was cancelled
                raise
            if conn is not None:
                return conn
            # None: a connection was dropped, so there is room to open one.

    def release(self, conn: Any) -> None:
        """Give back a connection whose lookup finished."""
        if self._born.get(conn) != self._generation:
            self.discard(conn)
        else:
            self._pass_on(conn)

    def discard(self, conn: Any) -> None:
        """Close a connection that failed (or is stale); its place is free again."""
        if self._born.pop(conn, None) is None:
            return
        conn.terminate()
        self._pass_on(None)

    def expire(self) -> None:
        """Replace every connection: the idle ones now, the lent ones on release."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for conn in idle:
            self.discard(conn)

    def _pass_on(self, conn: Any) -> None:
        """To the longest waiter (a connection, or None: room to open one), else idle."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)

    async def close(self) -> None:
        """Close the idle connections now and lent ones when given back (a later
        lookup opens new ones)."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for conn in idle:
            self._born.pop(conn, None)
            try:
                await conn.close(timeout=CONNECT_TIMEOUT)
            except Exception:  # already gone: nothing to tell the server
                conn.terminate()


class _Batch:
    """Token ids waiting for one read, and what it found, by id: each record, or the
    error reading its row raised."""

    __slots__ = ("done", "ids")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ids: list[str] = []
        self.done: asyncio.Future[dict[str, TokenRecord | Exception]] = loop.create_future()
        # Read even when every waiter has gone, so asyncio does not log it unread.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())


class AsyncpgTokenReader:
    """Reads on asyncpg connections of their own, outside SQLAlchemy's pool.

    A lookup by id made while another read is in flight joins a batch, read
    ``WHERE token_id = ANY($1)`` in one round trip. One batch is out at a
    time: the next stays open until the one before it is answered, so every
    lookup that arrives meanwhile shares it. Under concurrency that spares
    most lookups asyncpg's per-query work on the event loop and PostgreSQL
    its per-statement work. Batches used to close at the loop's next turn,
    several out at once: 0.23-0.26 round trips a lookup at concurrency 16 and
    about 1 at 4, against 0.19-0.21 and 0.73-0.78 now (2-3 % less server CPU;
    benchmarks/README.md). A lookup alone still goes at once, so concurrency 1
    pays nothing; one that meets a batch out waits for at most that batch and
    its own. A batch's query is sent after each of its lookups began, so it
    sees every revocation committed before any of them: as exact as a read
    of its own.
    """

    _SQLALCHEMY_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")

    def __init__(self, engine: AsyncEngine, *, size: int = POOL_SIZE) -> None:
        _, params = engine.dialect.create_connect_args(engine.url)
        self._params = {k: v for k, v in params.items() if k not in self._SQLALCHEMY_ONLY}
        self._connections = ReadConnections(self._connect, size)
        self._by_id = select_sql("token_id = $1")
        self._by_ids = select_sql("token_id = ANY($1::text[])")
        self._by_hash = _by_hash("$1")
        self._reading = 0  # reads in flight, batched or not
        self._batch: _Batch | None = None  # the batch still taking lookups
        self._batch_turn = asyncio.Lock()  # one batch out at a time, in the order made
        self._batch_tasks: set[asyncio.Task[None]] = set()

    async def _connect(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        return await asyncpg.connect(**{"timeout": CONNECT_TIMEOUT, **self._params})

    async def _query(self, run: Callable[[Any], Awaitable[R]]) -> R:
        """``run`` on a lent connection; after a failure, once more on a new one."""
        connections = self._connections
        self._reading += 1
        try:
            for attempt in (1, 2):
                conn = await connections.acquire()
                try:
                    result = await run(conn)
                except asyncio.CancelledError:
                    connections.discard(conn)  # it may be mid-operation: never reuse it
                    raise
                except Exception:
                    # A lost connection, or one left mid-operation by an outage,
                    # shows up under several names. What broke one (a restart)
                    # broke the others too: they are all replaced and the read
                    # tried once more on a new connection, which settles whether
                    # the database is there.
                    connections.discard(conn)
                    connections.expire()
                    if attempt == 2:
                        raise
                    continue
                connections.release(conn)
                return result
            raise AssertionError("unreachable")
        finally:
            self._reading -= 1

    async def _fetch(self, sql: str, value: str) -> TokenRecord | None:
        row = await self._query(lambda conn: conn.fetchrow(sql, value))
        return to_token(row.values()) if row is not None else None

    async def by_id(self, token_id: str) -> TokenRecord | NotRead | None:
        if not self._reading:
            return await self._fetch(self._by_id, token_id)
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = _Batch(loop)
            task = loop.create_task(self._read_batch(batch))
            self._batch_tasks.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._batch_tasks.discard)
        batch.ids.append(token_id)
        # Shielded: a lookup that gives up leaves the read going on for the others.
        found = (await asyncio.shield(batch.done)).get(token_id)
        if isinstance(found, Exception):
            raise found
        return found

    async def _read_batch(self, batch: _Batch) -> None:
        try:
            async with self._batch_turn:  # open, taking lookups, until the one ahead is answered
                if self._batch is batch:
                    self._batch = None  # closed: later lookups start the next batch
                rows = await self._query(lambda conn: conn.fetch(self._by_ids, batch.ids))
            found: dict[str, TokenRecord | Exception] = {}
            for row in rows:  # a row that cannot be read fails its own lookup only
                try:
                    found[row["token_id"]] = to_token(row.values())
                except Exception as exc:
                    found[row["token_id"]] = exc
        except Exception as exc:  # each lookup raises it, as its own read would
            batch.done.set_exception(exc)
        else:
            batch.done.set_result(found)
        finally:
            if self._batch is batch:  # cancelled while it waited for its turn
                self._batch = None
            if not batch.done.done():  # cancelled (shutdown): nobody is left hanging
                batch.done.cancel()

    async def by_hash(self, token_hash: str) -> TokenRecord | NotRead | None:
        return await self._fetch(self._by_hash, token_hash)

    async def close(self) -> None:
        await self._connections.close()
