"""RFC 7009's revocation on each driver: what one call revokes, what goes on the
deny-list with it, and that the driver path and SQLAlchemy's agree."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from keyturn.storage import schema
from keyturn.storage.records import TOKEN_KIND_REFRESH, TokenRecord
from keyturn.storage.repository import SqlStorage
from keyturn.storage.token_writer import (
    AsyncpgTokenWriter,
    SqlAlchemyTokenWriter,
    SqliteTokenWriter,
)
from tests.storage.test_token_writer import (
    _storage,
    _token,
    kill_writer_connection,
    traced,
    while_another_writer_holds_the_lock,
)

pytestmark = pytest.mark.anyio

NOW = 1_700_001_000


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[tuple[SqlStorage, str]]:
    storage, client_id = await _storage(database_url)
    yield storage, client_id
    await storage.close()


@pytest.fixture(params=["driver", "sqlalchemy"])
def revoking(
    storage: tuple[SqlStorage, str], request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[SqlStorage, str]:
    """The storage, revoking on the driver or through SQLAlchemy (as other databases do)."""
    db, _ = storage
    if request.param == "sqlalchemy":
        monkeypatch.setattr(db, "_token_writer", SqlAlchemyTokenWriter(db.engine))
    return storage


async def _denied(db: SqlStorage, client_id: str) -> dict[str, tuple[int, int, int | None]]:
    """The deny-list rows of ``client_id``'s tokens (the database is shared by the run)."""
    d, t = schema.denylist.c, schema.tokens.c
    mine = select(t.token_id).where(t.client_id == client_id)
    query = select(d.token_id, d.revoked_at, d.expires_at, d.published_at)
    async with db.engine.connect() as conn:
        rows = await conn.execute(query.where(d.token_id.in_(mine)))
        return {r.token_id: (r.revoked_at, r.expires_at, r.published_at) for r in rows}


def _revoked(record: TokenRecord, at: int = NOW) -> TokenRecord:
    return replace(record, revoked_at=at)


def _family(client_id: str) -> list[TokenRecord]:
    return [
        _token(client_id, family_id="fam-1", kind=TOKEN_KIND_REFRESH, expires_at=NOW + 86400),
        _token(client_id, family_id="fam-1"),  # live access token
        _token(client_id, family_id="fam-1", expires_at=NOW - 1),  # expired access token
        _token(client_id, family_id="fam-1", revoked_at=NOW - 5),  # revoked before
        _token(client_id, family_id="fam-2"),  # another family
    ]


async def test_one_token_is_revoked_once_and_denied(revoking: tuple[SqlStorage, str]) -> None:
    db, client_id = revoking
    access, refresh = _token(client_id), _token(client_id, kind=TOKEN_KIND_REFRESH)
    await db.record_tokens([access, refresh])

    assert await db.revoke_token(access.token_id, NOW) == [_revoked(access)]
    assert await db.revoke_token(access.token_id, NOW + 1) == []  # already revoked
    assert (await db.get_token(access.token_id)) == _revoked(access)
    assert await db.revoke_token(refresh.token_id, NOW) == [_revoked(refresh)]
    assert await db.revoke_token("no-such-token", NOW) == []
    # Only the live access token goes on the deny-list, unpublished.
    assert await _denied(db, client_id) == {access.token_id: (NOW, access.expires_at, None)}


async def test_a_family_is_revoked_whole_and_only_what_was_live_is_answered(
    revoking: tuple[SqlStorage, str],
) -> None:
    db, client_id = revoking
    refresh, live, expired, before, other = _family(client_id)
    await db.record_tokens([refresh, live, expired, before, other])

    revoked = await db.revoke_family("fam-1", NOW)
    assert sorted(revoked, key=lambda r: r.token_id) == sorted(
        [_revoked(refresh), _revoked(live), _revoked(expired)], key=lambda r: r.token_id
    )
    assert await db.get_token(before.token_id) == before  # its first revocation stands
    assert await db.get_token(other.token_id) == other
    assert await _denied(db, client_id) == {live.token_id: (NOW, live.expires_at, None)}
    assert await db.revoke_family("fam-1", NOW + 1) == []


async def test_concurrent_revocations_of_one_token_answer_it_once(
    storage: tuple[SqlStorage, str],
) -> None:
    db, client_id = storage
    token = _token(client_id)
    await db.record_token(token)
    answers = await asyncio.gather(*(db.revoke_token(token.token_id, NOW) for _ in range(8)))
    assert sorted(len(a) for a in answers) == [0] * 7 + [1]
    assert len(await _denied(db, client_id)) == 1


async def test_sqlite_revocation_waits_for_another_writer_off_the_event_loop(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    db, client_id, path = sqlite_storage
    token = _token(client_id)
    await db.record_token(token)
    revoking = db.revoke_token(token.token_id, NOW)
    revoked = await while_another_writer_holds_the_lock(path, revoking)
    assert revoked == [_revoked(token)]
    assert len(await _denied(db, client_id)) == 1


async def test_a_failed_sqlite_revocation_changes_nothing(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    db, client_id, _ = sqlite_storage
    token = _token(client_id)
    await db.record_token(token)
    async with db.engine.begin() as conn:  # the deny-list insert will collide
        await conn.execute(
            schema.denylist.insert().values(token_id=token.token_id, revoked_at=1, expires_at=2)
        )
    with pytest.raises(sqlite3.IntegrityError):
        await db.revoke_token(token.token_id, NOW)
    assert await db.get_token(token.token_id) == token  # rolled back whole
    other = _token(client_id)  # and the writer is usable after the failure
    await db.record_token(other)
    assert await db.revoke_token(other.token_id, NOW) == [_revoked(other)]


async def test_postgres_revocation_reconnects_after_its_connection_dies(
    postgres_database_url: str,
) -> None:
    db, client_id = await _storage(postgres_database_url)
    try:
        writer = db._token_writer
        assert isinstance(writer, AsyncpgTokenWriter)
        first, second = _token(client_id), _token(client_id)
        await db.record_tokens([first, second])
        assert await db.revoke_token(first.token_id, NOW) == [_revoked(first)]
        pid = await kill_writer_connection(db)
        # The dead connection is replaced and the revocation tried again.
        assert await db.revoke_token(second.token_id, NOW) == [_revoked(second)]
        assert writer._conn.get_server_pid() != pid
        assert set(await _denied(db, client_id)) == {first.token_id, second.token_id}
    finally:
        await db.close()


# -- SQLite: the revocations of one loop turn share one transaction -------------------


def _statements(db: SqlStorage) -> list[str]:
    """What the writer's loop connection runs from now on (it exists after one write)."""
    writer = db._token_writer
    assert isinstance(writer, SqliteTokenWriter)
    return traced(writer._inline)


def _revoked_in_file(path: Path, tokens: list[TokenRecord]) -> list[int | None]:
    """revoked_at of each token as another connection reads it: what was committed."""
    conn = sqlite3.connect(path)
    try:
        query = "SELECT revoked_at FROM tokens WHERE token_id = ?"
        return [conn.execute(query, (t.token_id,)).fetchone()[0] for t in tokens]
    finally:
        conn.close()


async def test_sqlite_revocations_of_one_turn_share_one_commit(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    db, client_id, path = sqlite_storage
    tokens = [_token(client_id) for _ in range(10)]
    await db.record_tokens(tokens)
    seen = _statements(db)
    answers = await asyncio.gather(*(db.revoke_token(t.token_id, NOW) for t in tokens))
    assert answers == [[_revoked(t)] for t in tokens]  # each its own, in its order
    assert seen.count("BEGIN IMMEDIATE") == 1
    assert seen.count("COMMIT") == 1
    assert seen.count("SAVEPOINT revocation") == 10
    assert _revoked_in_file(path, tokens) == [NOW] * 10
    assert set(await _denied(db, client_id)) == {t.token_id for t in tokens}


async def _one_to_collide(db: SqlStorage, client_id: str) -> tuple[TokenRecord, list[TokenRecord]]:
    """Three recorded tokens: the first (bad) will collide on the deny-list, two will not."""
    bad, *good = [_token(client_id) for _ in range(3)]
    await db.record_tokens([bad, *good])
    async with db.engine.begin() as conn:
        await conn.execute(
            schema.denylist.insert().values(token_id=bad.token_id, revoked_at=1, expires_at=2)
        )
    return bad, good


async def _revoke_around(
    db: SqlStorage, bad: TokenRecord, good: list[TokenRecord]
) -> list[list[TokenRecord] | BaseException]:
    """Revoke good, bad, good concurrently: each answer, or the exception it met."""
    return await asyncio.gather(
        *(db.revoke_token(t.token_id, NOW) for t in (good[0], bad, good[1])),
        return_exceptions=True,
    )


async def test_one_failed_revocation_leaves_the_rest_of_its_group_in(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    db, client_id, path = sqlite_storage
    bad, good = await _one_to_collide(db, client_id)
    seen = _statements(db)
    answers = await _revoke_around(db, bad, good)
    assert isinstance(answers[1], sqlite3.IntegrityError)
    assert answers[0::2] == [[_revoked(good[0])], [_revoked(good[1])]]
    assert seen.count("COMMIT") == 1  # one transaction all the same
    assert _revoked_in_file(path, [bad, *good]) == [None, NOW, NOW]  # bad's rolled back


async def test_a_sqlite_group_waits_for_another_writer_off_the_event_loop(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    db, client_id, path = sqlite_storage
    tokens = [_token(client_id) for _ in range(4)]
    await db.record_tokens(tokens)

    async def revoke_all() -> list[list[TokenRecord]]:
        return await asyncio.gather(*(db.revoke_token(t.token_id, NOW) for t in tokens))

    answers = await while_another_writer_holds_the_lock(path, revoke_all())
    assert answers == [[_revoked(t)] for t in tokens]
    assert _revoked_in_file(path, tokens) == [NOW] * 4


async def test_a_revocation_whose_caller_went_away_is_still_committed(
    sqlite_storage: tuple[SqlStorage, str, Path],
) -> None:
    db, client_id, path = sqlite_storage
    gone, kept = _token(client_id), _token(client_id)
    await db.record_tokens([gone, kept])
    abandoned = asyncio.ensure_future(db.revoke_token(gone.token_id, NOW))
    await asyncio.sleep(0)  # it has queued its revocation
    abandoned.cancel()  # as when a client hangs up mid-request
    assert await db.revoke_token(kept.token_id, NOW) == [_revoked(kept)]
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert _revoked_in_file(path, [gone, kept]) == [NOW, NOW]


async def test_closing_answers_the_revocations_already_asked(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    db, client_id = await _storage(f"sqlite+aiosqlite:///{path}")
    token = _token(client_id)
    await db.record_token(token)
    asked = asyncio.ensure_future(db.revoke_token(token.token_id, NOW))
    await asyncio.sleep(0)  # queued, its group not begun
    await db.close()
    assert await asked == [_revoked(token)]
    assert _revoked_in_file(path, [token]) == [NOW]


# -- PostgreSQL: the revocations asked while one is on its way go in one statement ---------


def _pg_statements(db: SqlStorage) -> list[str]:
    """What the writer's connection runs from now on (it exists after one write)."""
    writer = db._token_writer
    assert isinstance(writer, AsyncpgTokenWriter)
    seen: list[str] = []
    writer._conn.add_query_logger(lambda logged: seen.append(logged.query))
    return seen


def _revocations(seen: list[str]) -> tuple[int, int]:
    """Revoking statements run: all, and those for a group (asyncpg's own type
    lookups, on a statement's first use, are not counted)."""
    revoking = [query for query in seen if "UPDATE tokens" in query]
    return len(revoking), sum("unnest" in query for query in revoking)


async def test_postgres_revocations_asked_together_go_in_one_statement(
    postgres_storage: tuple[SqlStorage, str],
) -> None:
    db, client_id = postgres_storage
    tokens = [_token(client_id) for _ in range(10)]
    await db.record_tokens(tokens)
    seen = _pg_statements(db)
    answers = await asyncio.gather(*(db.revoke_token(t.token_id, NOW) for t in tokens))
    assert answers == [[_revoked(t)] for t in tokens]  # each its own
    assert _revocations(seen) == (1, 1)
    assert set(await _denied(db, client_id)) == {t.token_id for t in tokens}
    assert [await db.get_token(t.token_id) for t in tokens] == [_revoked(t) for t in tokens]
    # A lone revocation keeps the plain statement.
    lone = _token(client_id)
    await db.record_token(lone)
    seen.clear()
    assert await db.revoke_token(lone.token_id, NOW) == [_revoked(lone)]
    assert _revocations(seen) == (1, 0)


async def test_a_postgres_group_answers_as_one_revocation_after_another(
    postgres_storage: tuple[SqlStorage, str],
) -> None:
    """A token named twice goes to the first that names it, each at its own time."""
    db, client_id = postgres_storage
    refresh, live, expired, before, other = _family(client_id)
    lone = _token(client_id)
    await db.record_tokens([refresh, live, expired, before, other, lone])
    seen = _pg_statements(db)
    answers = await asyncio.gather(
        db.revoke_token(live.token_id, NOW),
        db.revoke_family("fam-1", NOW + 1),
        db.revoke_token(refresh.token_id, NOW + 2),  # revoked with its family just before
        db.revoke_token(lone.token_id, NOW + 3),
        db.revoke_family("fam-1", NOW + 4),
        db.revoke_token("no-such-token", NOW),
    )
    assert _revocations(seen) == (1, 1)
    by_id = [sorted(a, key=lambda r: r.token_id) for a in answers]
    assert by_id == [
        [_revoked(live, NOW)],
        sorted([_revoked(refresh, NOW + 1), _revoked(expired, NOW + 1)], key=lambda r: r.token_id),
        [],
        [_revoked(lone, NOW + 3)],
        [],
        [],
    ]
    assert await db.get_token(before.token_id) == before  # its first revocation stands
    assert await db.get_token(other.token_id) == other
    assert await _denied(db, client_id) == {
        live.token_id: (NOW, live.expires_at, None),
        lone.token_id: (NOW + 3, lone.expires_at, None),
    }


async def test_one_failed_postgres_revocation_leaves_the_rest_of_its_group_in(
    postgres_storage: tuple[SqlStorage, str],
) -> None:
    import asyncpg  # type: ignore[import-untyped]

    db, client_id = postgres_storage
    bad, good = await _one_to_collide(db, client_id)
    seen = _pg_statements(db)
    answers = await _revoke_around(db, bad, good)
    assert isinstance(answers[1], asyncpg.UniqueViolationError)
    assert answers[0::2] == [[_revoked(good[0])], [_revoked(good[1])]]
    assert _revocations(seen) == (4, 1)  # together first, then one by one
    assert await db.get_token(bad.token_id) == bad  # its revocation rolled back
    assert [await db.get_token(t.token_id) for t in good] == [_revoked(t) for t in good]


async def test_a_postgres_group_is_sent_again_on_a_new_connection(
    postgres_storage: tuple[SqlStorage, str],
) -> None:
    db, client_id = postgres_storage
    tokens = [_token(client_id) for _ in range(4)]
    await db.record_tokens(tokens)
    pid = await kill_writer_connection(db)
    answers = await asyncio.gather(*(db.revoke_token(t.token_id, NOW) for t in tokens))
    assert answers == [[_revoked(t)] for t in tokens]
    writer = db._token_writer
    assert isinstance(writer, AsyncpgTokenWriter)
    assert writer._conn.get_server_pid() != pid


async def test_a_postgres_revocation_whose_caller_went_away_is_still_committed(
    postgres_storage: tuple[SqlStorage, str],
) -> None:
    db, client_id = postgres_storage
    gone, kept = _token(client_id), _token(client_id)
    await db.record_tokens([gone, kept])
    abandoned = asyncio.ensure_future(db.revoke_token(gone.token_id, NOW))
    await asyncio.sleep(0)  # it has asked
    abandoned.cancel()  # as when a client hangs up mid-request
    assert await db.revoke_token(kept.token_id, NOW) == [_revoked(kept)]
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert await db.get_token(gone.token_id) == _revoked(gone)


async def test_closing_answers_the_postgres_revocations_already_asked(
    postgres_database_url: str,
) -> None:
    db, client_id = await _storage(postgres_database_url)
    token = _token(client_id)
    await db.record_token(token)
    asked = asyncio.ensure_future(db.revoke_token(token.token_id, NOW))
    await asyncio.sleep(0)  # asked, not yet sent
    await db.close()
    assert await asked == [_revoked(token)]
    db, _ = await _storage(postgres_database_url)
    try:
        assert await db.get_token(token.token_id) == _revoked(token)
    finally:
        await db.close()
