"""The deny-list: durable in the database first, published to Redis after, rebuilt when lost.

Runs on the real Redis under a key prefix of its own (deleted afterwards) and
on SQLite and PostgreSQL. An outage is a publisher pointed at a port where
nothing listens, or at a loopback socket that accepts and never answers (a
hung Redis); the shared Redis is never stopped.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from keyturn.core.revocation import revoked_key, revoked_key_prefix
from keyturn.guard.redis_denylist import RedisDenyList
from keyturn.server.denylist import DenyListPublisher
from keyturn.server.redis_ratelimit import RedisRateLimiter
from keyturn.storage.repository import SqlStorage
from tests.conftest import redis_prefix
from tests.storage.test_token_writer import _storage, _token

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("KEYTURN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DOWN_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    prefix = redis_prefix()
    yield prefix
    keys = list(client.scan_iter(prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[tuple[SqlStorage, str]]:
    storage, client_id = await _storage(database_url)
    yield storage, client_id
    await storage.close()


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A loopback port that accepts connections and never answers: Redis under SIGSTOP."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def on_denylist(prefix: str, jti: str) -> bool:
    with redis.Redis.from_url(REDIS_URL, socket_timeout=2) as client:
        return bool(client.exists(f"{prefix}revoked:{jti}"))


async def _revoked_tokens(storage: SqlStorage, client_id: str, n: int) -> list[str]:
    now = int(time.time())
    records = [_token(client_id, issued_at=now, expires_at=now + 600) for _ in range(n)]
    await storage.record_tokens(records)
    for record in records:
        assert await storage.revoke_token(record.token_id, now)
    return [r.token_id for r in records]


async def test_a_revocation_is_published_at_once(
    storage: tuple[SqlStorage, str], prefix: str
) -> None:
    db, client_id = storage
    publisher = DenyListPublisher(REDIS_URL, db, prefix=prefix)
    try:
        now = int(time.time())
        record = _token(client_id, issued_at=now, expires_at=now + 600)
        await db.record_token(record)
        revoked = await db.revoke_token(record.token_id, now)
        await publisher.add(revoked)
        assert on_denylist(prefix, record.token_id)
        assert record.token_id not in {jti for jti, _ in await db.pending_denials(10_000)}
        with redis.Redis.from_url(REDIS_URL) as client:
            ttl = client.ttl(f"{prefix}revoked:{record.token_id}")
        assert 590 <= ttl <= 600  # it expires with the token
    finally:
        await publisher.close()


async def test_a_revocation_made_while_redis_is_down_is_published_when_it_is_back(
    storage: tuple[SqlStorage, str], prefix: str
) -> None:
    db, client_id = storage
    down = DenyListPublisher(DOWN_URL, db, prefix=prefix)
    up = DenyListPublisher(REDIS_URL, db, prefix=prefix)
    try:
        now = int(time.time())
        record = _token(client_id, issued_at=now, expires_at=now + 600)
        await db.record_token(record)
        await down.add(await db.revoke_token(record.token_id, now))  # must not raise
        assert not on_denylist(prefix, record.token_id)
        pending = {jti for jti, _ in await db.pending_denials(10_000)}
        assert record.token_id in pending
        await up.sync_once()  # "Redis is back": the next pass of any process
        assert on_denylist(prefix, record.token_id)
        assert up.backlog == 0  # it published every pending one, other tests' too
        assert await db.denylist_backlog() == (0, None)
    finally:
        await down.close()
        await up.close()


async def test_a_redis_that_lost_its_data_is_rebuilt_from_the_database(
    storage: tuple[SqlStorage, str], prefix: str
) -> None:
    db, client_id = storage
    publisher = DenyListPublisher(REDIS_URL, db, prefix=prefix)
    try:
        jtis = await _revoked_tokens(db, client_id, 3)
        await publisher.sync_once()
        assert all(on_denylist(prefix, jti) for jti in jtis)
        # Deleting a token keeps it on the deny-list (its row is gone, its JWT is not).
        deleted = await db.delete_token(jtis[0])
        assert deleted is not None
        # What a Redis restarted without persistence looks like: nothing there.
        with redis.Redis.from_url(REDIS_URL) as client:
            client.delete(*client.scan_iter(prefix + "*"))
        assert not any(on_denylist(prefix, jti) for jti in jtis)
        await publisher.sync_once()
        assert all(on_denylist(prefix, jti) for jti in jtis)
        assert publisher.last_rebuild is not None
    finally:
        await publisher.close()


async def test_every_kind_of_revocation_reaches_the_durable_list(
    storage: tuple[SqlStorage, str],
) -> None:
    """Family revocation, bulk revocation and deleting a live token or a client."""
    from keyturn.storage.repository import TokenFilter

    db, client_id = storage
    now = int(time.time())
    fam, bob = "fam-" + secrets.token_hex(4), "bob-" + secrets.token_hex(4)  # the PostgreSQL
    family = [_token(client_id, issued_at=now, expires_at=now + 600, family_id=fam)]  # database
    family.append(_token(client_id, issued_at=now, expires_at=now + 600, family_id=fam))  # is
    single = _token(client_id, issued_at=now, expires_at=now + 600, subject=bob)  # shared by
    deleted = _token(client_id, issued_at=now, expires_at=now + 600)  # the whole run
    expired = _token(client_id, issued_at=now - 900, expires_at=now - 300, subject=bob)
    await db.record_tokens([*family, single, deleted, expired])
    assert len(await db.revoke_family(fam, now)) == 2
    revoked = await db.revoke_matching(TokenFilter(subject=bob), now)
    assert {r.token_id for r in revoked} == {single.token_id, expired.token_id}
    assert await db.revoke_matching(TokenFilter(subject=bob), now) == []  # once only
    await db.delete_token(deleted.token_id)
    ours = {r.token_id for r in (*family, single, deleted, expired)}
    live = {jti for jti, _ in await db.live_denials(now, "", 10_000)} & ours
    # Every live one, deleted included; the expired token needs no entry.
    assert live == ours - {expired.token_id}
    other = _token(client_id, issued_at=now, expires_at=now + 600)
    await db.record_token(other)
    assert await db.delete_client(client_id)
    assert other.token_id in {jti for jti, _ in await db.live_denials(now, "", 10_000)}


async def test_a_hung_redis_costs_one_timeout_then_nothing(
    storage: tuple[SqlStorage, str], hung_redis: str
) -> None:
    db, client_id = storage
    publisher = DenyListPublisher(hung_redis, db, timeout=0.1)
    limiter = RedisRateLimiter(hung_redis, timeout=0.1)
    try:
        now = int(time.time())
        record = _token(client_id, issued_at=now, expires_at=now + 600)
        await db.record_token(record)
        revoked = await db.revoke_token(record.token_id, now)
        started = time.perf_counter()
        await publisher.add(revoked)  # times out once, opens the breaker
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(20):
            await publisher.add(revoked)
            assert await limiter.acquire("k", 100, 60) is None
        rest = time.perf_counter() - started
        # Loose bounds (no timing assertion on speed, only on not waiting for Redis):
        # redis-py's defaults retried ten times with backoff, about 6 s here.
        assert first < 2.0
        assert rest < 2.0
        assert publisher.breaker.is_open
        assert limiter.breaker.is_open
        # Kept for the loop to publish.
        assert record.token_id in {jti for jti, _ in await db.pending_denials(10_000)}
    finally:
        await publisher.close()
        await limiter.close()


async def test_the_guard_reads_what_the_publisher_writes(
    storage: tuple[SqlStorage, str], prefix: str
) -> None:
    """The key contract (core/revocation.py) end to end, under a non-default namespace."""
    db, client_id = storage
    publisher = DenyListPublisher(REDIS_URL, db, prefix=prefix)
    guard = RedisDenyList(REDIS_URL, prefix=revoked_key_prefix(prefix))
    try:
        now = int(time.time())
        record = _token(client_id, issued_at=now, expires_at=now + 600)
        await db.record_token(record)
        await publisher.add(await db.revoke_token(record.token_id, now))
        assert await guard.ais_revoked(record.token_id)
        assert guard.is_revoked(record.token_id)
        assert not await guard.ais_revoked(secrets.token_hex(8))
        assert publisher.key(record.token_id) == revoked_key(record.token_id, guard.prefix)
    finally:
        await guard.aclose()
        await publisher.close()
