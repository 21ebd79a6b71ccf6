"""The token lookups' driver-level read path (introspection, revocation), on each driver."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from keyturn.storage import database, token_reader
from keyturn.storage.records import TOKEN_KIND_REFRESH
from keyturn.storage.repository import SqlStorage
from keyturn.storage.token_reader import (
    COLUMNS,
    NOT_READ,
    AsyncpgTokenReader,
    ReadConnections,
    SqliteTokenReader,
    create_token_reader,
)
from keyturn.testing.ports import closed_port
from tests.storage.test_token_writer import _storage, _token, traced

pytestmark = pytest.mark.anyio


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[tuple[SqlStorage, str]]:
    storage, client_id = await _storage(database_url)
    yield storage, client_id
    await storage.close()


async def test_reader_matches_the_driver(storage: tuple[SqlStorage, str]) -> None:
    db, _ = storage
    expected = SqliteTokenReader if db.engine.dialect.name == "sqlite" else AsyncpgTokenReader
    assert isinstance(db._token_reader, expected)


async def test_lookups_read_what_sqlalchemy_reads(storage: tuple[SqlStorage, str]) -> None:
    """Every field, both lookups, and the misses, against SQLAlchemy's own read."""
    db, client_id = storage
    reader = db._token_reader
    assert reader is not None
    access = _token(client_id)
    refresh = _token(client_id, kind=TOKEN_KIND_REFRESH, family_id="fam", audience=())
    single = _token(client_id, audience=("https://only.test",), subject=None, kid=None)
    await db.record_tokens([access, refresh, single])
    for record in (access, refresh, single):
        assert await reader.by_id(record.token_id) == record
        assert await db.get_token(record.token_id) == record
    assert await reader.by_hash(refresh.token_hash) == refresh
    assert await db.find_token_by_hash(refresh.token_hash) == refresh
    # Access tokens are found by jti only (the hash index leaves them out).
    assert await reader.by_hash(access.token_hash) is None
    assert await reader.by_id("no-such-token") is None
    assert await reader.by_hash("0" * 64) is None


async def test_a_revocation_by_another_connection_is_seen_at_once(database_url: str) -> None:
    """Another engine stands for another process: its committed revocation is read
    by the very next lookup, so introspection never answers from a stale view."""
    db, client_id = await _storage(database_url)
    other = SqlStorage(database.create_engine(db.engine.url.render_as_string(hide_password=False)))
    try:
        record = _token(client_id, expires_at=4_000_000_000)
        await db.record_token(record)
        reader = db._token_reader
        assert reader is not None
        before = await reader.by_id(record.token_id)
        assert before is not None
        assert before.revoked_at is None
        await other.revoke_token(record.token_id, 1_700_000_100)
        after = await db.get_token(record.token_id)
        assert after is not None
        assert after.revoked_at == 1_700_000_100
        await other.revoke_family("fam-none", 1)  # unrelated write, still consistent
        assert await db.get_token(record.token_id) == after
    finally:
        await other.close()
        await db.close()


async def test_sqlite_reader_never_waits_on_the_event_loop(tmp_path: Path) -> None:
    """A lock it would have to wait for (a connection in exclusive mode) makes the
    reader step aside (NOT_READ) at once; SQLAlchemy's read answers instead."""
    path = tmp_path / "k.db"
    db, client_id = await _storage(f"sqlite+aiosqlite:///{path}")
    try:
        record = _token(client_id)
        await db.record_token(record)
        reader = db._token_reader
        assert isinstance(reader, SqliteTokenReader)
        # Exclusive mode needs the file to itself: every other connection closes,
        # and the reader must open a fresh one under the lock.
        await reader.close()
        await db._token_writer.close()
        await db.engine.dispose()
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        try:
            assert await reader.by_id(record.token_id) is NOT_READ
        finally:
            holder.execute("COMMIT")
            holder.close()
        assert await reader.by_id(record.token_id) == record
    finally:
        await db.close()


def _statements(reader: SqliteTokenReader) -> list[str]:
    return traced(reader._conn)


@pytest.mark.parametrize("check", ["wal-index header", "PRAGMA data_version"])
async def test_sqlite_reader_remembers_a_record_until_anything_is_committed(
    sqlite_storage: tuple[SqlStorage, str, Path], check: str
) -> None:
    """Between two commits a lookup costs no statement (a look at the mapped
    WAL-index header), or one PRAGMA where the header cannot be mapped; any
    commit, by any other connection, to any row, makes the next lookup read the
    row again."""
    db, client_id, path = sqlite_storage
    record, other = _token(client_id), _token(client_id)
    await db.record_tokens([record, other])
    reader = db._token_reader
    assert isinstance(reader, SqliteTokenReader)
    if check == "PRAGMA data_version":
        await reader.close()
        reader._map_tried = True  # as if the -shm file could not be mapped
    first = await reader.by_id(record.token_id)
    assert first == record
    assert (reader._shm is not None) == (check == "wal-index header")
    seen = _statements(reader)
    assert await reader.by_id(record.token_id) is first
    assert seen == ([] if check == "wal-index header" else ["PRAGMA data_version"])

    outside = sqlite3.connect(path, isolation_level=None)
    try:
        # Another row changes: this record did not, but it is read again all the same.
        outside.execute("UPDATE tokens SET revoked_at = 5 WHERE token_id = ?", (other.token_id,))
        seen.clear()
        assert await reader.by_id(record.token_id) == record
        assert seen[-1].startswith("SELECT")
        assert len(seen) == (1 if check == "wal-index header" else 2)
        # This row is revoked, then deleted: each seen by the very next lookup.
        outside.execute("UPDATE tokens SET revoked_at = 7 WHERE token_id = ?", (record.token_id,))
        revoked = await reader.by_id(record.token_id)
        assert revoked is not None
        assert revoked.revoked_at == 7
        outside.execute("DELETE FROM tokens WHERE token_id = ?", (record.token_id,))
        assert await reader.by_id(record.token_id) is None
    finally:
        outside.close()


async def test_sqlite_reader_takes_a_header_caught_mid_write_for_a_change(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    """A commit writes the header's second copy, then its first: a look between
    the two sees unequal copies, which no kept record may be answered from."""
    db, client_id, _ = sqlite_storage
    record = _token(client_id)
    await db.record_token(record)
    reader = db._token_reader
    assert isinstance(reader, SqliteTokenReader)
    assert await reader.by_id(record.token_id) == record
    shm = reader._shm
    assert shm is not None
    header = shm[:96]
    torn = header[:48] + bytes(b ^ 0xFF for b in header[48:])
    try:
        reader._shm = torn  # type: ignore[assignment]  # bytes slice as the mapping does
        seen = _statements(reader)
        for _ in range(2):  # each look sees a write in progress: each reads the row
            assert await reader.by_id(record.token_id) == record
        assert [s.startswith("SELECT") for s in seen] == [True, True]
    finally:
        reader._shm = shm


async def test_sqlite_reader_keeps_the_pragma_outside_wal_mode(tmp_path: Path) -> None:
    """A database not in WAL mode (made by another program): no header to map, so
    the PRAGMA stays the check, and a commit is still seen at once."""
    path = tmp_path / "rollback.db"
    record = _token("c")
    row = [getattr(record, name) for name in COLUMNS]
    row[COLUMNS.index("audience")] = json.dumps(list(record.audience))
    made = sqlite3.connect(path, isolation_level=None)
    try:
        assert made.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        made.execute(f"CREATE TABLE tokens ({', '.join(COLUMNS)})")
        made.execute(f"INSERT INTO tokens VALUES ({', '.join('?' * len(COLUMNS))})", row)
        reader = SqliteTokenReader(str(path))
        try:
            first = await reader.by_id(record.token_id)
            assert first == record
            assert reader._shm is None
            seen = _statements(reader)
            assert await reader.by_id(record.token_id) is first
            assert seen == ["PRAGMA data_version"]
            made.execute("DELETE FROM tokens WHERE token_id = ?", (record.token_id,))
            assert await reader.by_id(record.token_id) is None
        finally:
            await reader.close()
    finally:
        made.close()


async def test_sqlite_reader_sees_a_commit_of_another_process_at_once(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    db, client_id, path = sqlite_storage
    record = _token(client_id, kind=TOKEN_KIND_REFRESH, family_id="fam")
    await db.record_token(record)
    reader = db._token_reader
    assert isinstance(reader, SqliteTokenReader)
    for _ in range(2):  # the second answer is the remembered one
        assert await reader.by_hash(record.token_hash) == record
        assert await reader.by_id(record.token_id) == record
    revoke = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('UPDATE tokens SET revoked_at = 9 WHERE token_id = ?', (sys.argv[2],))\n"
    )
    command = [sys.executable, "-c", revoke, str(path), record.token_id]
    await asyncio.to_thread(subprocess.run, command, check=True)
    by_hash = await reader.by_hash(record.token_hash)
    by_id = await reader.by_id(record.token_id)
    assert by_hash is not None
    assert by_hash.revoked_at == 9
    assert by_id is not None
    assert by_id.revoked_at == 9


async def test_sqlite_reader_remembers_only_what_it_found_and_only_so_many(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    db, client_id, _ = sqlite_storage
    records = [_token(client_id) for _ in range(3)]
    await db.record_tokens(records)
    reader = db._token_reader
    assert isinstance(reader, SqliteTokenReader)
    reader._memo_size = 2
    for record in records:
        assert await reader.by_id(record.token_id) == record
        assert 1 <= len(reader._memo) <= 2
    seen = _statements(reader)
    for _ in range(2):  # unknown tokens cannot fill the memory: each miss is read
        assert await reader.by_id("no-such-token") is None
    assert sum(s.startswith("SELECT") for s in seen) == 2
    assert len(reader._memo) <= 2
    # A connection opened again counts data_version anew: nothing carried over.
    await reader.close()
    assert not reader._memo
    assert await reader.by_id(records[0].token_id) == records[0]
    # Size 0: no memory, and no PRAGMA to feed it; every lookup is one SELECT.
    reader._memo_size = 0
    await reader.close()
    assert await reader.by_id(records[0].token_id) == records[0]
    seen = _statements(reader)
    assert await reader.by_id(records[0].token_id) == records[0]
    assert len(seen) == 1
    assert seen[0].startswith("SELECT")
    assert not reader._memo


async def test_other_databases_have_no_fast_reader(tmp_path: Path) -> None:
    engine = database.create_engine("sqlite+aiosqlite://")
    try:
        assert create_token_reader(engine) is None
    finally:
        await engine.dispose()


async def test_postgres_reader_survives_its_connections_dying(postgres_database_url: str) -> None:
    db, client_id = await _storage(postgres_database_url)
    try:
        reader = db._token_reader
        assert isinstance(reader, AsyncpgTokenReader)
        record = _token(client_id)
        await db.record_token(record)
        assert await reader.by_id(record.token_id) == record
        conn = await reader._connections.acquire()
        pid = conn.get_server_pid()
        reader._connections.release(conn)
        async with db.engine.connect() as conn:
            await conn.execute(text(f"SELECT pg_terminate_backend({int(pid)})"))
        # The pool's idle connection is dead: the read is tried once more, on a new one.
        assert await reader.by_id(record.token_id) == record
    finally:
        await db.close()


def _count_queries(reader: AsyncpgTokenReader) -> list[int]:
    """Count the reader's round trips (each direct read or batch is one query)."""
    calls: list[int] = []
    query = reader._query

    async def counted(run: Any) -> Any:
        calls.append(1)
        return await query(run)

    reader._query = counted  # type: ignore[method-assign]
    return calls


@pytest.fixture
async def postgres(
    postgres_database_url: str,
) -> AsyncIterator[tuple[SqlStorage, str, AsyncpgTokenReader]]:
    """A migrated PostgreSQL storage with a client, and its token reader."""
    db, client_id = await _storage(postgres_database_url)
    try:
        reader = db._token_reader
        assert isinstance(reader, AsyncpgTokenReader)
        yield db, client_id, reader
    finally:
        await db.close()


async def test_concurrent_postgres_lookups_share_round_trips(
    postgres: tuple[SqlStorage, str, AsyncpgTokenReader],
) -> None:
    """Lookups made while a read is in flight are read in one batch: each still gets
    its own record (or None), duplicates and misses included."""
    db, client_id, reader = postgres
    records = [_token(client_id, expires_at=4_000_000_000) for _ in range(12)]
    await db.record_tokens(records)
    await db.revoke_token(records[3].token_id, 1_700_000_100)
    expected = {r.token_id: await reader.by_id(r.token_id) for r in records}
    queries = _count_queries(reader)
    ids = [r.token_id for r in records] + ["no-such-token", records[0].token_id]
    found = await asyncio.gather(*(reader.by_id(i) for i in ids))
    assert found == [expected.get(i) for i in ids]
    assert found[3] is not None
    assert found[3].revoked_at == 1_700_000_100
    # The first read goes alone; the 13 that arrive meanwhile share one batch.
    assert len(queries) == 2
    assert await reader.by_id(records[5].token_id) == expected[records[5].token_id]
    assert len(queries) == 3  # alone again: no batch, no wait


async def test_lookups_made_while_a_batch_is_out_wait_and_share_the_next(
    postgres: tuple[SqlStorage, str, AsyncpgTokenReader],
) -> None:
    """One batch out at a time: lookups that arrive, each on a turn of its own, while
    one is out are read together after it, and see what was committed before they
    began (a revocation made while they waited too)."""
    db, client_id, reader = postgres
    records = [_token(client_id, expires_at=4_000_000_000) for _ in range(10)]
    await db.record_tokens(records)
    gate = asyncio.Event()
    queries: list[int] = []
    query = reader._query

    async def held(run: Any) -> Any:
        queries.append(1)
        number = len(queries)

        async def gated(conn: Any) -> Any:
            if number <= 2:  # the lone read and the first batch, on their connections
                await gate.wait()
            return await run(conn)

        return await query(gated)

    reader._query = held  # type: ignore[method-assign]

    async def turns() -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    first = [asyncio.create_task(reader.by_id(r.token_id)) for r in records[:2]]
    await turns()
    assert len(queries) == 2  # one alone, one batch of one
    later = []
    for number, record in enumerate(records[2:]):
        if number == 3:
            await db.revoke_token(records[5].token_id, 1_700_000_300)
        later.append(asyncio.create_task(reader.by_id(record.token_id)))
        await turns()  # before, each of these turns sent a batch of its own
    assert len(queries) == 2  # none sent while the first batch is out
    gate.set()
    found = await asyncio.gather(*first, *later)
    assert len(queries) == 3  # the eight shared one batch
    assert [f.token_id if f else None for f in found] == [r.token_id for r in records]
    assert [f.revoked_at if f else None for f in found] == [None] * 5 + [1_700_000_300] + [None] * 4


async def test_a_batch_sees_a_revocation_committed_before_its_lookups(
    postgres_database_url: str,
) -> None:
    db, client_id = await _storage(postgres_database_url)
    other = SqlStorage(database.create_engine(db.engine.url.render_as_string(hide_password=False)))
    try:
        reader = db._token_reader
        assert isinstance(reader, AsyncpgTokenReader)
        records = [_token(client_id, expires_at=4_000_000_000) for _ in range(6)]
        await db.record_tokens(records)
        await asyncio.gather(*(reader.by_id(r.token_id) for r in records))  # connections warm
        for record in records:
            await other.revoke_token(record.token_id, 1_700_000_200)
        found = await asyncio.gather(*(reader.by_id(r.token_id) for r in records))
        assert [f.revoked_at if f else None for f in found] == [1_700_000_200] * len(records)
    finally:
        await other.close()
        await db.close()


async def test_a_lookup_that_gives_up_leaves_its_batch_to_the_others(
    postgres: tuple[SqlStorage, str, AsyncpgTokenReader],
) -> None:
    db, client_id, reader = postgres
    records = [_token(client_id) for _ in range(4)]
    await db.record_tokens(records)
    tasks = [asyncio.create_task(reader.by_id(r.token_id)) for r in records]
    await asyncio.sleep(0)  # each has started: one reading, three in the batch
    tasks[2].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    assert [done[i] for i in (0, 1, 3)] == [records[i] for i in (0, 1, 3)]
    assert await reader.by_id(records[2].token_id) == records[2]


async def test_a_row_that_cannot_be_read_fails_only_its_own_batched_lookup(
    postgres: tuple[SqlStorage, str, AsyncpgTokenReader],
) -> None:
    db, client_id, reader = postgres
    good, bad = _token(client_id), _token(client_id)
    await db.record_tokens([good, bad])
    async with db.engine.begin() as conn:  # damage one row behind the schema's back
        await conn.execute(
            text("UPDATE tokens SET audience = '5' WHERE token_id = :t"),
            {"t": bad.token_id},
        )
    done = await asyncio.gather(
        reader.by_id(good.token_id),  # alone: a read of its own
        reader.by_id(bad.token_id),  # these three: one batch
        reader.by_id(good.token_id),
        reader.by_id("no-such-token"),
        return_exceptions=True,
    )
    assert done[0] == good
    assert isinstance(done[1], TypeError)  # an audience that is no list
    assert done[2:] == [good, None]


async def test_when_postgres_is_unreachable_every_batched_lookup_fails() -> None:
    """Nothing listens on the port: the lone read and each batched lookup raise the
    connection's error (which the storage reports as a fault: a 503), none hangs."""
    port = closed_port()
    engine = database.create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/none")
    try:
        reader = create_token_reader(engine)
        assert isinstance(reader, AsyncpgTokenReader)
        done = await asyncio.wait_for(
            asyncio.gather(*(reader.by_id(f"t{i}") for i in range(5)), return_exceptions=True),
            timeout=30,
        )
        assert all(isinstance(d, OSError) for d in done), done
        assert reader._reading == 0
    finally:
        await engine.dispose()


class FakeConnection:
    """What `ReadConnections` uses of an asyncpg connection: terminate and close."""

    opened = 0

    def __init__(self) -> None:
        FakeConnection.opened += 1
        self.number = FakeConnection.opened
        self.terminated = False
        self.closed = False

    def terminate(self) -> None:
        self.terminated = True

    async def close(self, timeout: float) -> None:  # noqa: ASYNC109 (asyncpg's signature)
        self.closed = True


def _connections(size: int) -> ReadConnections:
    async def connect() -> FakeConnection:
        await asyncio.sleep(0)
        return FakeConnection()

    return ReadConnections(connect, size)


async def test_read_connections_lend_at_most_size_and_queue_the_rest_in_order() -> None:
    connections = _connections(2)
    a, b = await connections.acquire(), await connections.acquire()
    assert a is not b
    assert connections.count == 2
    third = asyncio.ensure_future(connections.acquire())
    fourth = asyncio.ensure_future(connections.acquire())
    await asyncio.sleep(0.01)
    assert not third.done()
    assert not fourth.done()
    connections.release(b)
    # The first waiter gets the first connection given back.
    assert await asyncio.wait_for(third, 1.0) is b
    connections.release(a)
    assert await asyncio.wait_for(fourth, 1.0) is a
    assert connections.count == 2
    connections.release(a)
    assert await connections.acquire() is a  # idle again, and reused: nothing new opened
    assert connections.count == 2


async def test_a_discarded_connection_makes_room_for_a_new_one() -> None:
    connections = _connections(1)
    broken = await connections.acquire()
    waiting = asyncio.ensure_future(connections.acquire())
    await asyncio.sleep(0.01)
    connections.discard(broken)
    fresh = await asyncio.wait_for(waiting, 1.0)
    assert broken.terminated
    assert fresh is not broken
    assert not fresh.terminated
    assert connections.count == 1
    connections.discard(broken)  # twice: no effect on the count
    assert connections.count == 1


async def test_expire_replaces_idle_connections_now_and_lent_ones_on_release() -> None:
    connections = _connections(3)
    idle, lent = await connections.acquire(), await connections.acquire()
    connections.release(idle)
    connections.expire()
    assert idle.terminated
    assert not lent.terminated
    connections.release(lent)
    assert lent.terminated  # from before the failure: never lent again
    fresh = await connections.acquire()
    assert fresh not in (idle, lent)
    assert connections.count == 1


async def test_a_failed_connect_lets_a_waiter_try_instead_of_hanging() -> None:
    gate = asyncio.Event()
    attempts = 0

    async def connect() -> FakeConnection:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await gate.wait()
            raise OSError("connection refused")
        return FakeConnection()

    connections = ReadConnections(connect, 1)
    first = asyncio.ensure_future(connections.acquire())
    await asyncio.sleep(0.01)  # first is opening: the only place is taken
    second = asyncio.ensure_future(connections.acquire())
    await asyncio.sleep(0.01)
    assert not second.done()  # it waits for that place
    gate.set()
    with pytest.raises(OSError, match="refused"):
        await first
    conn = await asyncio.wait_for(second, 1.0)
    assert isinstance(conn, FakeConnection)
    assert connections.count == 1


async def test_a_cancelled_waiter_passes_on_what_it_was_handed() -> None:
    connections = _connections(1)
    conn = await connections.acquire()
    cancelled = asyncio.ensure_future(connections.acquire())
    behind = asyncio.ensure_future(connections.acquire())
    await asyncio.sleep(0.01)
    connections.release(conn)  # handed to the first waiter...
    cancelled.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(behind, 1.0) is conn
    assert cancelled.cancelled()
    assert connections.count == 1


async def test_close_closes_idle_connections_and_lent_ones_on_return() -> None:
    connections = _connections(2)
    idle, lent = await connections.acquire(), await connections.acquire()
    connections.release(idle)
    await connections.close()
    assert idle.closed
    assert connections.count == 1
    connections.release(lent)
    assert lent.terminated
    assert connections.count == 0
    again = await connections.acquire()  # a later lookup opens a new one
    assert again not in (idle, lent)


SHM_DMS_BYTE = 128
"""The byte of the ``-shm`` file whose shared lock says "the WAL-index is in use":
a process that can lock it exclusively rebuilds the file (SQLite's os_unix.c,
UNIX_SHM_DMS)."""

TAKE_DMS = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))
except OSError:
    print("held")
else:
    print("free")
"""


async def test_sqlite_reader_keeps_sqlite_s_locks_on_the_wal_index(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    """Mapping the WAL-index header must not drop this process's locks on the file.

    Closing any descriptor of a file drops every POSIX lock the process holds
    on it. When the reader closed the one it mapped the header through,
    another process (a ``keyturn`` command beside the server) found the
    WAL-index unused, rebuilt it, and the server died of SIGBUS.
    """
    db, client_id, path = sqlite_storage
    record = _token(client_id)
    await db.record_token(record)
    reader = db._token_reader
    assert isinstance(reader, SqliteTokenReader)
    shm = f"{path}-shm"

    def dms() -> str:
        done = subprocess.run(
            [sys.executable, "-c", TAKE_DMS, shm, str(SHM_DMS_BYTE)],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    assert dms() == "held"
    assert await reader.by_id(record.token_id) == record
    assert reader._shm is not None  # the header is mapped
    assert dms() == "held"
    await reader.close()
    assert dms() == "held"  # the writer's and the pool's connections are still open


async def test_sqlite_header_mapping_goes_with_the_file(tmp_path: Path) -> None:
    """Kept while the ``-shm`` file is there; closed once SQLite deleted it with its
    last connection (so a process that opens many databases does not run out)."""
    path = tmp_path / "k.db"
    db, client_id = await _storage(f"sqlite+aiosqlite:///{path}")
    record = _token(client_id)
    await db.record_token(record)
    assert db._token_reader is not None
    assert await db._token_reader.by_id(record.token_id) == record
    shm = f"{path}-shm"
    assert shm in token_reader._MAPPED
    await db.close()
    assert not os.path.exists(shm)  # noqa: ASYNC240 - a test's one look
    assert shm not in token_reader._MAPPED
