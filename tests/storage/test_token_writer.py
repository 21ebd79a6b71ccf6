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
from keyturn.storage.repository import SqlStorage
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


async def test_sqlite_checkpoints_in_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five single-row commits' worth of WAL pages.
    monkeypatch.setattr(token_writer, "CHECKPOINT_EVERY", 5 * (token_writer.COMMIT_PAGES + 1))
    db, client_id = await _storage(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    try:
        writer = db._token_writer
        assert isinstance(writer, SqliteTokenWriter)
        threads: list[str] = []
        real = writer._write_threaded

        def spy(work: Callable[[sqlite3.Connection], None]) -> None:
            threads.append(threading.current_thread().name)
            real(work)

        monkeypatch.setattr(writer, "_write_threaded", spy)
        for _ in range(12):
            await db.record_token(_token(client_id))
        await db.record_tokens([_token(client_id) for _ in range(token_writer.INLINE_MAX_ROWS + 1)])
        # 5 inline, 1 threaded, 5 inline, 1 threaded; then the large batch.
        assert len(threads) == 3
        # A batch counts its rows: one inline batch of 40 fills the WAL budget too.
        await db.record_tokens([_token(client_id) for _ in range(40)])
        assert len(threads) == 3  # inline: 40 rows are within INLINE_MAX_ROWS
        await db.record_token(_token(client_id))
        assert len(threads) == 4
        assert all(name.startswith("keyturn-sqlite") for name in threads)
        assert await db.count_tokens(client_id) == 12 + token_writer.INLINE_MAX_ROWS + 1 + 41
    finally:
        await db.close()


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
