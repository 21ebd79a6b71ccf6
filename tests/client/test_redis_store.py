"""Redis token stores against the real Redis (skipped, saying why, only when it is unreachable)."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest

from keyturn.client import OAuthToken, StoreLockTimeoutError, TokenManager
from keyturn.client.stores.redis_store import AsyncRedisTokenStore, RedisTokenStore
from keyturn.testing import FakeClock, FakeTokenServer
from tests.client.conftest import API
from tests.conftest import redis_prefix

redis = pytest.importorskip("redis", reason="redis-py is not installed (keyturn[redis])")
redis_asyncio = pytest.importorskip("redis.asyncio")

REDIS_URL = os.environ.get("KEYTURN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
pytestmark = pytest.mark.redis


@pytest.fixture
def prefix() -> str:
    return redis_prefix()


@pytest.fixture
def sync_redis(prefix: str) -> Iterator[Any]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        client.close()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield client
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
async def async_redis(sync_redis: Any) -> AsyncIterator[Any]:
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def test_round_trip_and_compare_and_clear(sync_redis: Any, prefix: str) -> None:
    store = RedisTokenStore(sync_redis, prefix=prefix)
    old = OAuthToken(access_token="a1", refresh_token="r1")
    new = OAuthToken(access_token="a2", refresh_token="r2", extra={"k": [1]})
    assert store.load("k") is None
    store.save("k", new)
    assert store.load("k") == new
    assert not store.clear("k", old)
    assert store.load("k") == new
    assert store.clear("k", new)
    assert store.load("k") is None
    store.save("k", OAuthToken(access_token="a3"))
    assert store.clear("k", OAuthToken(access_token="a3"))  # no refresh token on either side


def test_managers_on_two_hosts_share_one_token(
    sync_redis: Any, prefix: str, clock: FakeClock, server: FakeTokenServer
) -> None:
    def host() -> TokenManager:
        return TokenManager(
            server.password_credentials(),
            store=RedisTokenStore(sync_redis, prefix=prefix),
            clock=clock,
            http_client=httpx2.Client(transport=server.transport()),
        )

    a, b = host(), host()
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda m=m: results.append(m.get_token().access_token))
        for m in (a, b)
        for _ in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert set(results) == {"at-1"}
    assert server.token_requests == 1
    clock.advance(3600)
    assert b.get_token().refresh_token == "rt-2"
    assert a.get_token().refresh_token == "rt-2"  # re-read under the lock: no reuse of rt-1
    assert server.grants == {"password": 1, "refresh_token": 1}
    a.close()
    b.close()


@pytest.mark.anyio
async def test_async_store_with_async_client(
    async_redis: Any, prefix: str, clock: FakeClock, server: FakeTokenServer
) -> None:
    store = AsyncRedisTokenStore(async_redis, prefix=prefix)
    manager = TokenManager(server.client_credentials(), store=store, clock=clock)
    async with httpx2.AsyncClient(auth=manager.auth(), transport=server.transport()) as client:
        assert (await client.get(API)).status_code == 200
    saved = await store.aload(manager.core.store_key)
    assert saved is not None
    assert saved.access_token == "at-1"
    assert not await store.aclear(manager.core.store_key, OAuthToken(access_token="other"))
    assert await store.aclear(manager.core.store_key, saved)
    # An async-only store cannot serve a sync client: a clear error.
    with (
        httpx2.Client(auth=manager.clone_with().auth(), transport=server.transport()) as sync,
        pytest.raises(TypeError, match="async-only"),
    ):
        sync.get(API)


def test_a_lock_held_too_long_is_keyturns_error(sync_redis: Any, prefix: str) -> None:
    holder = RedisTokenStore(sync_redis, prefix=prefix).lock("k")
    holder.__enter__()
    try:
        waiter = RedisTokenStore(sync_redis, prefix=prefix, blocking_timeout=0.05)
        expected = pytest.raises(StoreLockTimeoutError, match=r"blocking_timeout=")
        with expected as caught, waiter.lock("k"):
            pytest.fail("the lock is held by another")
        assert isinstance(caught.value, TimeoutError)
        assert prefix in str(caught.value)
    finally:
        holder.__exit__(None, None, None)
    with RedisTokenStore(sync_redis, prefix=prefix, blocking_timeout=0.05).lock("k"):
        pass  # free again


@pytest.mark.anyio
async def test_an_async_lock_held_too_long_is_keyturns_error(async_redis: Any, prefix: str) -> None:
    holder = AsyncRedisTokenStore(async_redis, prefix=prefix).alock("k")
    await holder.__aenter__()
    try:
        waiter = AsyncRedisTokenStore(async_redis, prefix=prefix, blocking_timeout=0.05)
        with pytest.raises(StoreLockTimeoutError, match=r"blocking_timeout="):
            async with waiter.alock("k"):
                pytest.fail("the lock is held by another")
    finally:
        await holder.__aexit__(None, None, None)
