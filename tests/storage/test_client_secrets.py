"""Client-secret rotation in storage (migration 0009), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keyturn.server.clients import build_client
from keyturn.server.secrets import Hasher
from keyturn.server.settings import normalize_database_url
from keyturn.storage import database
from keyturn.storage.records import TOKEN_KIND_ACCESS, Client, TokenRecord
from keyturn.storage.repository import SqlStorage
from tests.conftest import TEST_PEPPER

pytestmark = pytest.mark.anyio
HASHER = Hasher(bytes.fromhex(TEST_PEPPER))


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[SqlStorage]:
    engine = database.create_engine(normalize_database_url(database_url))
    await database.upgrade(engine)
    store = SqlStorage(engine)
    yield store
    await store.close()


async def _client(storage: SqlStorage, **options: object) -> Client:
    client = build_client(HASHER, **options).client  # type: ignore[arg-type]
    await storage.create_client(client)
    return client


async def test_a_new_client_records_when_its_secret_was_made(storage: SqlStorage) -> None:
    made = await _client(storage, now=1_000)
    stored = await storage.get_client(made.client_id)
    assert stored is not None
    assert (stored.secret_created_at, stored.previous_secret_hash) == (1_000, None)
    assert stored.secrets_dict(now=2_000) == [
        {"label": "current", "created_at": 1_000, "expires_at": None}
    ]


async def test_rotation_keeps_the_old_secret_until_the_overlap_ends(storage: SqlStorage) -> None:
    old = await _client(storage, now=1_000)
    rotated = await storage.rotate_client_secret(old.client_id, HASHER.hash("new"), 2_000, 2_060)
    assert rotated == await storage.get_client(old.client_id)
    assert rotated is not None
    assert rotated.secret_hash == HASHER.hash("new")
    assert rotated.previous_secret_hash == old.secret_hash
    assert (rotated.secret_created_at, rotated.updated_at) == (2_000, 2_000)
    assert rotated.previous_secret_live(2_059.9)
    assert not rotated.previous_secret_live(2_060)
    assert rotated.secrets_dict(now=2_030) == [
        {"label": "current", "created_at": 2_000, "expires_at": None},
        {"label": "previous", "created_at": 1_000, "expires_at": 2_060},
    ]
    assert [s["label"] for s in rotated.secrets_dict(now=2_060)] == ["current"]


async def test_a_second_rotation_replaces_the_previous_secret(storage: SqlStorage) -> None:
    old = await _client(storage, now=1_000)
    first = await storage.rotate_client_secret(old.client_id, HASHER.hash("one"), 2_000, 9_000)
    second = await storage.rotate_client_secret(old.client_id, HASHER.hash("two"), 3_000, 9_500)
    assert first is not None
    assert second is not None
    # Chained in the database: the previous secret is the one rotated out last.
    assert second.previous_secret_hash == HASHER.hash("one") != old.secret_hash
    assert (second.previous_secret_created_at, second.previous_secret_expires_at) == (2_000, 9_500)


async def test_rotation_without_overlap_keeps_no_previous_secret(storage: SqlStorage) -> None:
    old = await _client(storage)
    await storage.rotate_client_secret(old.client_id, HASHER.hash("a"), 2_000, 9_000)
    rotated = await storage.rotate_client_secret(old.client_id, HASHER.hash("b"), 3_000, None)
    assert rotated is not None
    assert rotated.secret_hash == HASHER.hash("b")
    assert rotated.previous_secret_hash is None
    assert rotated.previous_secret_created_at is None
    assert rotated.previous_secret_expires_at is None


async def test_rotation_of_a_missing_or_public_client_changes_nothing(
    storage: SqlStorage,
) -> None:
    assert await storage.rotate_client_secret("nobody", HASHER.hash("x"), 1, 2) is None
    public = await _client(
        storage,
        public=True,
        grant_types=["authorization_code"],
        redirect_uris=["https://app.example/cb"],
    )
    assert await storage.rotate_client_secret(public.client_id, HASHER.hash("x"), 1, 2) is None
    assert await storage.get_client(public.client_id) == public


async def test_expiring_the_previous_secret_early(storage: SqlStorage) -> None:
    old = await _client(storage, now=1_000)
    await storage.rotate_client_secret(old.client_id, HASHER.hash("new"), 2_000, 9_000)
    expired = await storage.expire_previous_secret(old.client_id, 2_500)
    assert expired is not None
    assert (expired.previous_secret_hash, expired.previous_secret_expires_at) == (None, None)
    assert (expired.secret_hash, expired.updated_at) == (HASHER.hash("new"), 2_500)
    # Idempotent: nothing to expire leaves the record as it is.
    assert await storage.expire_previous_secret(old.client_id, 3_000) == expired
    assert await storage.expire_previous_secret("nobody", 3_000) is None


async def test_an_update_never_writes_the_secrets(storage: SqlStorage) -> None:
    """A settings change read before a rotation must not undo it when written after."""
    old = await _client(storage, now=1_000)
    read_before = await storage.get_client(old.client_id)
    assert read_before is not None
    rotated = await storage.rotate_client_secret(old.client_id, HASHER.hash("new"), 2_000, 9_000)
    assert await storage.update_client(read_before.with_changes(name="renamed"))
    after = await storage.get_client(old.client_id)
    assert after is not None
    assert after.name == "renamed"
    assert rotated is not None
    assert (after.secret_hash, after.previous_secret_hash) == (
        rotated.secret_hash,
        rotated.previous_secret_hash,
    )


async def test_purge_forgets_previous_secrets_past_their_overlap(storage: SqlStorage) -> None:
    now = int(time.time())
    ended = await _client(storage)
    live = await _client(storage)
    await storage.rotate_client_secret(ended.client_id, HASHER.hash("e"), now - 10, now - 1)
    await storage.rotate_client_secret(live.client_id, HASHER.hash("l"), now - 10, now + 3600)
    await storage.forget_expired(cutoff=now, now=now)
    gone = await storage.get_client(ended.client_id)
    kept = await storage.get_client(live.client_id)
    assert gone is not None
    assert kept is not None
    assert (gone.previous_secret_hash, gone.previous_secret_expires_at) == (None, None)
    assert gone.secret_hash == HASHER.hash("e")
    assert kept.previous_secret_hash == live.secret_hash


async def test_downgrade_keeps_clients_and_their_tokens(tmp_path: Path) -> None:
    """0009's downgrade drops columns in place: rebuilding ``clients`` on SQLite would
    cascade-delete every token."""
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    store = SqlStorage(engine)
    try:
        await database.upgrade(engine)
        client = await _client(store)
        await store.rotate_client_secret(client.client_id, HASHER.hash("n"), 2_000, 9_000)
        await store.record_token(
            TokenRecord(
                token_id="t1",
                token_hash="h1",
                kind=TOKEN_KIND_ACCESS,
                client_id=client.client_id,
                subject=None,
                scope="",
                audience=(),
                grant_type="client_credentials",
                issued_at=1,
                expires_at=2**40,
            )
        )
        await database.downgrade(engine, "0008")
        assert await database.current_revision(engine) == "0008"
        await database.upgrade(engine)
        back = await store.get_client(client.client_id)
        assert back is not None
        assert back.secret_hash == HASHER.hash("n")
        assert back.previous_secret_hash is None  # the downgrade forgot it, nothing else
        assert await store.count_tokens(client.client_id) == 1
    finally:
        await store.close()
