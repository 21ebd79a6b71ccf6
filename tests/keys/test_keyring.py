"""Publish-then-sign rotation, driven by a controllable clock on real storage."""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import jwt as pyjwt
import pytest

from keyturn.keys.jwt import Signer
from keyturn.keys.keyring import KeyRing
from keyturn.storage import database
from keyturn.storage.records import TokenRecord
from keyturn.storage.repository import SqlStorage
from keyturn.testing import FakeClock

pytestmark = pytest.mark.anyio


START = 1_800_000_000.0


@pytest.fixture
async def storage(own_database_url: str) -> AsyncIterator[SqlStorage]:
    # A database of its own: these tests add and drop signing keys, which would
    # pull the keys from under servers that share the session's database.
    engine = database.create_engine(own_database_url)
    await database.upgrade(engine)
    store = SqlStorage(engine)
    yield store
    await store.close()


def ring(storage: SqlStorage, clock: FakeClock, **kw: object) -> KeyRing:
    return KeyRing(storage, b"p" * 32, clock=clock, refresh_interval=10, activation_delay=600, **kw)  # type: ignore[arg-type]


def spy_on_inline_signing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the threads that signed in this process (helpers do not show)."""
    local: list[str] = []
    real_signature = Signer.signature

    def spy(self: Signer, signing_input: bytes) -> bytes:
        local.append(threading.current_thread().name)
        return real_signature(self, signing_input)

    monkeypatch.setattr(Signer, "signature", spy)
    return local


async def assert_verifies(keyring: KeyRing, tokens: list[tuple[str, str, str]]) -> None:
    jwks = pyjwt.PyJWKSet.from_dict(json.loads(await keyring.jwks_body()))
    for token, kid, sub in tokens:
        key = next(k for k in jwks.keys if k.key_id == kid)
        alg = key.algorithm_name
        assert pyjwt.decode(token, key.key, algorithms=[alg])["sub"] == sub


async def kids_published(keyring: KeyRing) -> set[str]:
    return {k["kid"] for k in json.loads(await keyring.jwks_body())["keys"]}


async def record_token(storage: SqlStorage, kid: str, expires_at: int) -> None:
    from sqlalchemy import insert

    from keyturn.storage import schema
    from keyturn.storage.records import Client

    client_id = "c-" + secrets.token_hex(4)
    await storage.create_client(Client(client_id=client_id))
    await storage.record_token(
        TokenRecord(
            token_id=secrets.token_hex(8),
            token_hash=secrets.token_hex(32),
            kind="access_token",
            client_id=client_id,
            subject="s",
            scope="",
            audience=("a",),
            grant_type="x",
            issued_at=expires_at - 100,
            expires_at=expires_at,
            kid=kid,
        )
    )
    del insert, schema


async def test_first_key_signs_at_once(storage: SqlStorage) -> None:
    clock = FakeClock(START)
    keyring = ring(storage, clock)
    await keyring.ensure_key()
    token, kid = await keyring.sign({"sub": "x"})
    assert pyjwt.get_unverified_header(token)["kid"] == kid
    assert await kids_published(keyring) == {kid}
    # A second start does not add a key.
    await ring(storage, clock).ensure_key()
    assert len(await storage.list_signing_keys()) == 1


async def test_a_kid_is_cut_from_the_thumbprint_and_unique_in_the_ring(
    storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from joserfc.jwk import JWKRegistry

    import keyturn.keys.keyring as keyring_module

    keyring = ring(storage, FakeClock(START))
    await keyring.ensure_key()
    (first,) = json.loads(await keyring.jwks_body())["keys"]
    thumbprint = JWKRegistry.import_key(first).thumbprint()
    assert len(thumbprint) == 43
    assert first["kid"] == thumbprint[:8]
    # A new key whose kid is already in the ring is drawn again.
    real, drawn = keyring_module.public_jwk, []

    def colliding_once(private_key: Any, alg: str) -> dict[str, Any]:
        jwk = real(private_key, alg)
        drawn.append(jwk["kid"])
        return jwk | {"kid": first["kid"]} if len(drawn) == 1 else jwk

    monkeypatch.setattr(keyring_module, "public_jwk", colliding_once)
    status = await keyring.rotate(alg="ES256")
    assert len(drawn) == 2
    assert status.kid == drawn[1] != first["kid"]
    assert await kids_published(keyring) == {first["kid"], drawn[1]}


async def test_rotation_publishes_then_signs_then_retires(storage: SqlStorage) -> None:
    clock = FakeClock(START)
    keyring = ring(storage, clock)
    await keyring.ensure_key()
    old_kid = keyring.signer().kid
    status = await keyring.rotate(alg="ES256")
    assert status.state == "pending"
    new_kid = status.kid
    # Published at once, but the old key keeps signing until the delay passes.
    assert await kids_published(keyring) == {old_kid, new_kid}
    old_token, kid = await keyring.sign({"sub": "x"})
    assert kid == old_kid
    await record_token(storage, old_kid, expires_at=int(clock.now) + 3600)

    clock.now += 601
    _, kid = await keyring.sign({"sub": "x"})
    assert kid == new_kid
    states = {s.kid: s.state for s in await keyring.statuses()}
    assert states == {old_kid: "retired", new_kid: "active"}

    # The retired key stays published while a token it signed is still valid...
    clock.now += 1000
    await keyring.refresh(force=True)
    assert await kids_published(keyring) == {old_kid, new_kid}
    assert await keyring.verify(old_token, old_kid)  # for introspection, say
    assert not await keyring.verify(old_token, new_kid)
    # ...and is dropped (and deleted) once that token has expired.
    clock.now += 3600
    await keyring.refresh(force=True)
    assert await kids_published(keyring) == {new_kid}
    assert [k.kid for k in await storage.list_signing_keys()] == [new_kid]
    assert not await keyring.verify(old_token, old_kid)  # a key no longer held


async def test_every_process_publishes_a_rotated_key_at_once(storage: SqlStorage) -> None:
    """Issue 17, item 12: not a refresh interval later. b's signing cache is fresh for
    10 s, yet what b publishes (JWKS, PEM, metadata algorithms) is read afresh."""
    clock = FakeClock(START)
    a = ring(storage, clock)
    await a.ensure_key()
    b = ring(storage, clock)
    await b.ensure_key()
    status = await a.rotate(delay=30, alg="ES256")
    assert status.kid in await kids_published(b)
    assert await b.public_pem(status.kid) is not None
    assert await b.published_algs() == ["ES256", "RS256"]
    assert b.signer().kid != status.kid  # it signs only from activates_at
    clock.now += 31
    await b.refresh()
    assert b.signer().kid == status.kid


async def test_concurrent_publications_share_one_read(storage: SqlStorage) -> None:
    keyring = ring(storage, FakeClock(START))
    await keyring.ensure_key()
    reads = 0
    real = storage.list_signing_keys

    async def counted() -> Any:
        nonlocal reads
        reads += 1
        await anyio.sleep(0.01)  # a read in flight while the others arrive
        return await real()

    keyring._storage = _Spy(storage, counted)  # type: ignore[assignment]
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(keyring.jwks_body)
    assert 1 <= reads <= 2  # the one in flight, and at most one begun after it


class _Spy:
    """``storage`` with ``list_signing_keys`` replaced."""

    def __init__(self, storage: SqlStorage, list_signing_keys: Any) -> None:
        self._storage = storage
        self.list_signing_keys = list_signing_keys

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


async def test_private_keys_are_stored_encrypted(storage: SqlStorage) -> None:
    keyring = ring(storage, FakeClock(START))
    await keyring.ensure_key()
    (record,) = await storage.list_signing_keys()
    assert "ENCRYPTED PRIVATE KEY" in record.private_key
    with pytest.raises(ValueError):  # noqa: PT011 - cryptography's own error type
        KeyRing(storage, b"q" * 32)._load_signer(record)


async def test_close_stops_the_signing_threads(storage: SqlStorage) -> None:
    keyring = ring(storage, FakeClock(START))
    await keyring.ensure_key()
    await keyring.sign({"sub": "x"})  # RS256: signed on the keyring's own threads
    pool = keyring._sign_pool
    assert pool is not None
    executor = pool._executor
    assert executor is not None
    keyring.close()
    assert keyring._sign_pool is None
    with pytest.raises(RuntimeError):
        executor.submit(print)


@pytest.mark.parametrize(
    ("alg", "busy", "on_pool"),
    [
        ("RS256", False, False),  # alone: inline, no thread hop
        ("RS256", True, True),  # others waiting: the loop stays free
        ("RS256", None, True),  # unknown: assume others
        ("ES256", True, False),  # fast curve: the hop would cost more than it frees
    ],
)
async def test_where_a_token_is_signed(
    storage: SqlStorage,
    alg: str,
    busy: bool | None,
    on_pool: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyring = ring(storage, FakeClock(START), alg=alg)
    threads = spy_on_inline_signing(monkeypatch)
    try:
        await keyring.ensure_key()
        await keyring.sign({"sub": "x"}, busy=busy)
    finally:
        keyring.close()
    assert threads[0].startswith("keyturn-sign") is on_pool


@pytest.mark.parametrize(("busy", "in_helper"), [
    (True, True),  # under load: a helper process signs
    (False, False),  # alone: still inline
])  # fmt: skip
async def test_helper_processes_sign_rsa_under_load(
    storage: SqlStorage,
    busy: bool,
    in_helper: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyring = ring(storage, FakeClock(START), alg="RS256")
    local = spy_on_inline_signing(monkeypatch)
    try:
        await keyring.ensure_key()
        await keyring.start_sign_processes(1)
        [pid] = keyring.sign_process_ids
        token, kid = await keyring.sign({"sub": "x"}, busy=busy)
        await keyring.rotate(delay=0)  # the new key reaches the helper on first use
        token2, kid2 = await keyring.sign({"sub": "y"}, busy=busy)
    finally:
        keyring.close()
    assert keyring.sign_process_ids == []
    assert (local == []) is in_helper
    assert kid2 != kid
    await assert_verifies(keyring, [(token, kid, "x"), (token2, kid2, "y")])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_helpers_start_only_once_an_rsa_key_is_in_the_ring(
    storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = ring(storage, FakeClock(START), alg="ES256")
    local = spy_on_inline_signing(monkeypatch)
    try:
        await keyring.ensure_key()
        await keyring.start_sign_processes(1)
        assert keyring.sign_process_ids == []  # ES256 signs inline: no idle process
        es_token, es_kid = await keyring.sign({"sub": "e"}, busy=True)
        assert len(local) == 1
        await keyring.rotate(alg="RS256", delay=0)  # the refresh starts the helpers
        assert len(keyring.sign_process_ids) == 1
        rs_token, rs_kid = await keyring.sign({"sub": "r"}, busy=True)
        assert len(local) == 1  # the RSA token was signed in the helper
    finally:
        keyring.close()
    await assert_verifies(keyring, [(es_token, es_kid, "e"), (rs_token, rs_kid, "r")])


async def test_helpers_that_cannot_start_leave_signing_to_the_threads(
    storage: SqlStorage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    keyring = ring(storage, FakeClock(START), alg="RS256")
    try:
        await keyring.ensure_key()
        monkeypatch.setattr(sys, "executable", "/nonexistent/python")
        await keyring.start_sign_processes(2)
        assert keyring.sign_process_ids == []
        assert "signing on threads" in caplog.text
        token, kid = await keyring.sign({"sub": "x"}, busy=True)
        assert keyring._sign_pool is not None
    finally:
        keyring.close()
    jwks = pyjwt.PyJWKSet.from_dict(json.loads(await keyring.jwks_body()))
    assert pyjwt.decode(token, jwks[kid].key, algorithms=["RS256"])["sub"] == "x"


async def test_a_ring_that_may_not_prune_keeps_an_expired_retired_key(
    storage: SqlStorage,
) -> None:
    """A read-only reader (the CLI's list commands) deletes nothing; a server does."""
    clock = FakeClock(START)
    keyring = ring(storage, clock)
    await keyring.ensure_key()
    old_kid = keyring.signer().kid
    new_kid = (await keyring.rotate(delay=0)).kid
    clock.now += 3600  # superseded an hour ago, past the grace; it signed no token
    reader = ring(storage, clock, prune=False)
    await reader.refresh(force=True)
    assert await kids_published(reader) == {old_kid, new_kid}
    assert {s.kid: s.state for s in await reader.statuses()} == {
        old_kid: "retired",
        new_kid: "active",
    }
    assert len(await storage.list_signing_keys()) == 2
    await keyring.refresh(force=True)  # a ring that may prune drops it
    assert [k.kid for k in await storage.list_signing_keys()] == [new_kid]
