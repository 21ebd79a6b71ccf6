"""The token-insert hot path on each driver: what it writes, and how it fails."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from sqlalchemy import text

from keyturn.server.clients import build_client
from keyturn.server.secrets import Hasher, generate_token_id
from keyturn.server.settings import normalize_database_url
from keyturn.storage import database, token_writer
from keyturn.storage.records import TOKEN_KIND_ACCESS, TokenRecord
from keyturn.storage.repository import SqlStorage, TokenFilter
from keyturn.storage.token_writer import (
    AsyncpgTokenWriter,
    SqlAlchemyTokenWriter,
    SqliteTokenWriter,
    create_token_writer,
)
from tests.conftest import TEST_PEPPER

pytestmark = pytest.mark.anyio

T = TypeVar("T")


async def _storage(url: str) -> tuple[SqlStorage, str]:
    engine = database.create_engine(normalize_database_url(url))
    await database.upgrade(engine)
    storage = SqlStorage(engine)
    client = build_client(Hasher(bytes.fromhex(TEST_PEPPER)), scopes=["read"]).client
    await storage.create_client(client)
    return storage, client.client_id


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[tuple[SqlStorage, str]]:
    storage, client_id = await _storage(database_url)
    yield storage, client_id
    await storage.close()


def traced(conn: sqlite3.Connection | None) -> list[str]:
    """What ``conn`` runs from now on, statement by statement."""
    assert conn is not None
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    return seen


def _token(client_id: str, **changes: object) -> TokenRecord:
    values: dict[str, object] = {
        "token_id": generate_token_id(),
        "token_hash": generate_token_id() + generate_token_id(),
        "kind": TOKEN_KIND_ACCESS,
        "client_id": client_id,
        "subject": "alice",
        "scope": "read",
        "audience": ("https://a.test", "https://b.test"),
        "grant_type": "client_credentials",
        "issued_at": 1_700_000_000,
        "expires_at": 1_700_003_600,
        "kid": "k1",
        "auth_time": 1_699_999_999,
    }
    values.update(changes)
    return TokenRecord(**values)  # type: ignore[arg-type]


async def test_writer_matches_the_driver(storage: tuple[SqlStorage, str]) -> None:
    db, _ = storage
    expected = SqliteTokenWriter if db.engine.dialect.name == "sqlite" else AsyncpgTokenWriter
    assert isinstance(db._token_writer, expected)


async def test_every_field_reads_back_as_written(storage: tuple[SqlStorage, str]) -> None:
    db, client_id = storage
    one = _token(client_id)
    many = [_token(client_id, family_id="fam", parent_id=one.token_id) for _ in range(20)]
    await db.record_token(one)
    await db.record_tokens(many)
    for record in [one, *many]:
        assert await db.get_token(record.token_id) == record
    assert await db.count_tokens(client_id) == 21


async def test_a_failing_batch_writes_nothing(storage: tuple[SqlStorage, str]) -> None:
    db, client_id = storage
    existing = _token(client_id)
    await db.record_token(existing)
    batch = [_token(client_id), _token(client_id, token_id=existing.token_id), _token(client_id)]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await db.record_tokens(batch)
    assert await db.get_token(batch[0].token_id) is None
    assert await db.count_tokens(client_id) == 1
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await db.record_token(existing)  # a single row takes its own path on asyncpg
    await db.record_token(batch[0])  # the writer is usable after the failures
    assert await db.get_token(batch[0].token_id) == batch[0]


async def test_unknown_client_is_refused_by_the_foreign_key(
    storage: tuple[SqlStorage, str],
) -> None:
    db, _ = storage
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await db.record_token(_token("kt_nobody"))


async def while_another_writer_holds_the_lock(path: Path, write: Awaitable[T]) -> T:
    """Run ``write`` while another connection holds SQLite's write lock for 0.4 s, and
    check that it waited for the lock off the event loop, which went on meanwhile."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    release = threading.Timer(0.4, lambda: other.execute("COMMIT"))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tick)
        release.start()
        started = time.monotonic()
        result = await write
        waited = time.monotonic() - started
        tasks.cancel_scope.cancel()
    other.close()
    assert waited >= 0.3  # it really waited for the lock ...
    assert ticks >= 15  # ... while the event loop went on serving others
    return result


async def test_sqlite_waits_for_another_writer_off_the_event_loop(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    """A lock held elsewhere sends the write to the thread; the loop keeps running."""
    db, client_id, path = sqlite_storage
    record = _token(client_id)
    await while_another_writer_holds_the_lock(path, db.record_token(record))
    assert await db.get_token(record.token_id) == record


def wal_frames(path: Path) -> int:
    """Frames in the WAL now (itself a checkpoint, which writes none)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0][1]
    finally:
        conn.close()
    return int(frames)


def sqlite_writer(db: SqlStorage) -> SqliteTokenWriter:
    writer = db._token_writer
    assert isinstance(writer, SqliteTokenWriter)
    return writer


async def checkpoint_done(writer: SqliteTokenWriter) -> None:
    if writer._checkpoint is not None:
        await writer._checkpoint


async def test_sqlite_writer_thread_polls_for_the_lock_itself(
    sqlite_storage: tuple[SqlStorage, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its connection has no busy handler of SQLite's (whose sleeps grow to 25 ms
    and more): it tries again every BUSY_POLL, and gives up at the busy timeout."""
    db, client_id, path = sqlite_storage
    monkeypatch.setattr(token_writer, "BUSY_POLL", 0.02)
    writer = sqlite_writer(db)
    # A batch too large for the loop opens the thread's connection.
    await db.record_tokens([_token(client_id) for _ in range(token_writer.INLINE_MAX_ROWS + 1)])
    assert writer._threaded is not None
    assert writer._threaded.execute("PRAGMA busy_timeout").fetchall() == [(0,)]
    begins = traced(writer._threaded)
    record = _token(client_id)
    await while_another_writer_holds_the_lock(path, db.record_token(record))
    # 0.4 s of lock at 0.02 s a try: many tries, each refused at once.
    assert begins.count("BEGIN IMMEDIATE") >= 10
    assert await db.get_token(record.token_id) == record

    writer._busy_timeout = 0.2
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await db.record_token(_token(client_id))
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_sqlite_checkpoints_in_the_background_and_restarts_the_wal(
    sqlite_storage: tuple[SqlStorage, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen writers at once, with a checkpoint every five commits' worth of pages:
    no write carries one, and the WAL starts afresh after them, so its file
    stays small (it grows only while no RESTART has taken)."""
    db, client_id, path = sqlite_storage
    monkeypatch.setattr(token_writer, "CHECKPOINT_EVERY", 5 * (token_writer.COMMIT_PAGES + 1))
    writer = sqlite_writer(db)
    checkpoints: list[str] = []
    threaded: list[bool] = []
    real_checkpoint, real_threaded = writer._checkpoint_wal, writer._write_threaded

    def checkpoint() -> bool:
        checkpoints.append(threading.current_thread().name)
        return real_checkpoint()

    def write_threaded(work: Callable[[sqlite3.Connection], T], truncate: bool) -> T:
        threaded.append(truncate)
        return real_threaded(work, truncate)

    monkeypatch.setattr(writer, "_checkpoint_wal", checkpoint)
    monkeypatch.setattr(writer, "_write_threaded", write_threaded)
    wal = path.parent / (path.name + "-wal")
    before = wal.stat().st_size

    async def write(n: int) -> None:
        for _ in range(n):
            await db.record_token(_token(client_id))
            await anyio.sleep(0.002)  # each writer a stream of requests

    async with anyio.create_task_group() as tasks:
        for _ in range(16):
            tasks.start_soon(write, 25)
    await checkpoint_done(writer)
    assert True not in threaded  # no write waited to truncate the WAL
    assert len(checkpoints) >= 3  # one at a time: writes go on while one runs
    assert all(name.startswith("keyturn-sqlite-checkpoint") for name in checkpoints)
    # With no RESTART, the 400 commits grow the file by about 3,000 pages (their
    # every frame); restarted, it grows by the most written between two, 650-960.
    assert wal.stat().st_size - before < 1500 * token_writer.PAGE_SIZE
    assert await db.count_tokens(client_id) == 400


async def test_sqlite_writes_go_on_while_a_checkpoint_runs(
    sqlite_storage: tuple[SqlStorage, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, client_id, _ = sqlite_storage
    monkeypatch.setattr(token_writer, "CHECKPOINT_EVERY", token_writer.COMMIT_PAGES + 1)
    writer = sqlite_writer(db)
    stalled, entered = threading.Event(), threading.Event()
    real = writer._checkpoint_wal

    def slow_checkpoint() -> bool:
        entered.set()
        stalled.wait(10)
        return real()

    monkeypatch.setattr(writer, "_checkpoint_wal", slow_checkpoint)
    try:
        await db.record_token(_token(client_id))  # starts the checkpoint
        assert await anyio.to_thread.run_sync(entered.wait, 5)
        with anyio.fail_after(5):
            for _ in range(20):  # each past the budget, none waits for the checkpoint
                await db.record_token(_token(client_id))
        assert writer._checkpoint is not None  # still the first one, still stalled
    finally:
        stalled.set()
    await checkpoint_done(writer)
    assert await db.count_tokens(client_id) == 21


async def test_sqlite_truncates_the_wal_after_restarts_keep_failing(
    sqlite_storage: tuple[SqlStorage, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that stays on old pages makes every RESTART miss; after
    MISSED_RESTARTS, a write waits (off the loop) for a checkpoint that truncates."""
    db, client_id, path = sqlite_storage
    monkeypatch.setattr(token_writer, "CHECKPOINT_EVERY", token_writer.COMMIT_PAGES + 1)
    writer = sqlite_writer(db)
    await db.record_token(_token(client_id))
    await checkpoint_done(writer)
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM tokens").fetchall()  # holds its snapshot
    for _ in range(token_writer.MISSED_RESTARTS):
        await db.record_token(_token(client_id))
        await checkpoint_done(writer)
    assert writer._missed_restarts == token_writer.MISSED_RESTARTS
    assert wal_frames(path) > 0

    await db.record_token(_token(client_id))  # fills the budget; no checkpoint starts
    assert writer._checkpoint is None

    release = threading.Timer(0.3, lambda: reader.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    await db.record_token(_token(client_id))  # on the thread: TRUNCATE waits for the reader
    assert time.monotonic() - started >= 0.2
    release.join()
    reader.close()
    assert writer._missed_restarts == 0
    assert (path.parent / (path.name + "-wal")).stat().st_size == 0
    assert await db.count_tokens(client_id) == token_writer.MISSED_RESTARTS + 3


async def test_sqlite_purges_in_one_statement_on_the_writer_thread(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    db, client_id, _ = sqlite_storage
    now = 1_800_000_000
    dead = [_token(client_id, issued_at=now - 7200, expires_at=now - 3600) for _ in range(5)]
    revoked = [_token(client_id, issued_at=now - 7200, expires_at=now + 3600) for _ in range(2)]
    live = [_token(client_id, issued_at=now, expires_at=now + 3600) for _ in range(3)]
    await db.record_tokens(dead + revoked + live)
    for record in revoked:
        await db.revoke_token(record.token_id, now - 3600)
    writer = sqlite_writer(db)
    seen = traced(writer._inline)
    assert await db.purge_tokens(now - 60, 4) == 4
    assert writer._threaded is not None
    threaded = traced(writer._threaded)
    assert await db.purge_tokens(now - 60, 4) == 3
    assert await db.purge_tokens(now - 60, 4) == 0
    assert seen == []  # never on the event loop's connection
    deletes = [s for s in threaded if s.startswith("DELETE")]
    assert len(deletes) == 2
    assert all(s.startswith("DELETE FROM tokens WHERE rowid IN (SELECT rowid") for s in deletes)
    left = await db.list_tokens(TokenFilter(client_id=client_id), now, 50)
    assert {r.token_id for r in left} == {r.token_id for r in live}


async def test_other_databases_use_sqlalchemy(tmp_path: Path) -> None:
    engine = database.create_engine("sqlite+aiosqlite://")
    try:
        assert isinstance(create_token_writer(engine), SqlAlchemyTokenWriter)
    finally:
        await engine.dispose()
    # And that path writes what the others write.
    db, client_id = await _storage(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    try:
        generic = SqlAlchemyTokenWriter(db.engine)
        record = _token(client_id)
        await generic.write([record])
        assert await db.get_token(record.token_id) == record
    finally:
        await db.close()


async def kill_writer_connection(db: SqlStorage) -> int:
    """Terminate the token writer's own PostgreSQL connection, as a restart would."""
    writer = db._token_writer
    assert isinstance(writer, AsyncpgTokenWriter)
    pid = int(writer._conn.get_server_pid())
    async with db.engine.connect() as conn:
        await conn.execute(text(f"SELECT pg_terminate_backend({pid})"))
    return pid


async def test_postgres_writer_reconnects_after_its_connection_dies(
    postgres_database_url: str,
) -> None:
    db, client_id = await _storage(postgres_database_url)
    try:
        writer = db._token_writer
        assert isinstance(writer, AsyncpgTokenWriter)
        await db.record_token(_token(client_id))
        pid = await kill_writer_connection(db)
        record = _token(client_id)
        await db.record_token(record)  # the dead connection is replaced, the write retried
        assert writer._conn.get_server_pid() != pid
        assert await db.get_token(record.token_id) == record
    finally:
        await db.close()
