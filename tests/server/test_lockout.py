"""Lockouts that hold under a flood and cannot be aimed at a known client; equal-cost lookups.

Issue 13, findings 2 (a flood of random ids cleared every counter; anyone who
knew a client id could lock it out), 8 (unknown ids cost a database round trip,
known ones did not) and 10 (a client deleted while cached answered 500).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from keyturn.server.clients import ClientCache
from keyturn.server.lockout import Lockout, source_of
from keyturn.server.ratelimit import InMemoryRateLimiter
from tests.server.conftest import Harness, make_settings, run_harness

pytestmark = pytest.mark.anyio
CC = "client_credentials"


class _Ctx:
    """What `Lockout` reads of a server context: its settings and its limiter."""

    def __init__(self, tmp_path: Path, limiter: InMemoryRateLimiter) -> None:
        self.settings = make_settings(tmp_path, "sqlite+aiosqlite://")
        self.limiter = limiter


async def test_a_flood_of_random_ids_from_many_addresses_unlocks_nothing(tmp_path: Path) -> None:
    now = [0.0]
    limiter = InMemoryRateLimiter(clock=lambda: now[0])
    ctx: Any = _Ctx(tmp_path, limiter)
    clients, users = Lockout.for_clients(ctx), Lockout.for_users(ctx)
    for _ in range(ctx.settings.auth_failure_limit):
        await clients.failed(ctx, "known-client", "192.0.2.1")
    for _ in range(ctx.settings.login_failure_limit):
        await users.failed(ctx, "alice", "192.0.2.1")
    issuance_wait = None
    for _ in range(3):
        issuance_wait = await limiter.acquire("issue:known-client", 3, 60)
    assert await clients.blocked_for(ctx, "known-client", "192.0.2.1") is not None
    assert await users.blocked_for(ctx, "alice", "192.0.2.1") is not None
    assert issuance_wait is None
    assert await limiter.acquire("issue:known-client", 3, 60) is not None

    # 100,000 failures with random ids, each from an address of its own (the
    # worst case: no per-address throttle holds them back).
    for i in range(100_000):
        now[0] += 0.0001
        source = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        await clients.failed(ctx, secrets.token_urlsafe(12), source)

    assert len(limiter) <= limiter.max_keys
    assert limiter.refused > 0  # new keys were refused, old ones kept
    assert await clients.blocked_for(ctx, "known-client", "192.0.2.1") is not None
    assert await users.blocked_for(ctx, "alice", "192.0.2.1") is not None
    assert await limiter.acquire("issue:known-client", 3, 60) is not None
    # Authenticated clients' issuance buckets are still created when full.
    assert await limiter.acquire("issue:another-client", 3, 60) is None


async def test_refilled_buckets_are_the_ones_evicted(tmp_path: Path) -> None:
    now = [0.0]
    limiter = InMemoryRateLimiter(clock=lambda: now[0], max_keys=10)
    for i in range(10):
        await limiter.acquire(f"k{i}", 2, 60)  # half full, refilled after 30 s
    assert await limiter.acquire("locked", 1, 60) is not None  # full table: refused
    now[0] += 31
    assert await limiter.acquire("locked", 1, 60) is None  # the refilled ones went
    assert await limiter.acquire("locked", 1, 60) is not None
    assert len(limiter) == 1


def test_a_known_client_cannot_be_locked_out_by_another_address(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, auth_failure_limit=3)

    def post_from(harness: Harness, address: str, form: dict[str, str]) -> int:
        transport: Any = harness.http._transport  # where TestClient keeps the ASGI client address
        transport.client = (address, 4000)
        return harness.http.post("/oauth/token", data=form).status_code

    for harness in run_harness(settings):
        cid, secret = harness.create_client()
        for _ in range(3):
            wrong = {"grant_type": CC, "client_id": cid, "client_secret": "x"}
            assert post_from(harness, "203.0.113.9", wrong) == 401
        right = {"grant_type": CC, "client_id": cid, "client_secret": secret or ""}
        assert post_from(harness, "203.0.113.9", right) == 429  # the guesser is locked out
        assert post_from(harness, "198.51.100.7", right) == 200  # the owner is not


def test_one_address_guessing_many_ids_is_throttled(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, auth_failure_address_limit=20)
    for harness in run_harness(settings):
        forms = [
            {"grant_type": CC, "client_id": secrets.token_urlsafe(8), "client_secret": "x"}
            for _ in range(30)
        ]
        statuses = [harness.http.post("/oauth/token", data=f).status_code for f in forms]
        assert statuses[:20] == [401] * 20
        assert set(statuses[20:]) == {429}


def test_ipv6_sources_count_per_64() -> None:
    def src(host: str) -> str:
        return source_of(Request({"type": "http", "client": (host, 40000)}))

    assert src("2001:db8:1:2:aaaa::1") == src("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert src("::ffff:192.0.2.4") == "192.0.2.4"
    assert src("192.0.2.4") == "192.0.2.4"
    assert src("testclient") == "testclient"
    assert source_of(Request({"type": "http"})) == "unknown"  # no client in the scope


class CountingStorage:
    """The real storage, counting the client lookups that reach the database."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lookups = 0

    async def get_client(self, client_id: str) -> Any:
        self.lookups += 1
        return await self.inner.get_client(client_id)


def test_every_failed_authentication_costs_one_database_read(server: Harness) -> None:
    """Unknown id or wrong secret, cached or not: the same work, so the same time."""
    cid, secret = server.create_client()
    storage = CountingStorage(server.ctx.storage)
    server.ctx.clients = ClientCache(storage, ttl=60)  # type: ignore[arg-type]

    def reads(client_id: str, client_secret: str) -> int:
        before = storage.lookups
        form = {"grant_type": CC, "client_id": client_id, "client_secret": client_secret}
        r = server.http.post("/oauth/token", data=form)
        assert r.status_code in (200, 401)
        return storage.lookups - before

    assert reads(cid, secret or "") == 1  # first sight: read, then cached
    assert reads(cid, secret or "") == 0  # success from the cache
    assert [reads(cid, "wrong") for _ in range(3)] == [1, 1, 1]  # known, cached
    assert [reads("no-such-client", "x") for _ in range(3)] == [1, 1, 1]  # unknown
    assert [reads(secrets.token_urlsafe(9), "x") for _ in range(3)] == [1, 1, 1]  # fresh ids


def test_cache_is_bounded(server: Harness) -> None:
    cache = ClientCache(server.ctx.storage, ttl=60, max_entries=50)
    for i in range(200):
        server.call(cache.get, f"nobody-{i}")
    assert len(cache._entries) == 50


def test_a_client_deleted_while_cached_elsewhere_is_invalid_client_not_500(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, client_cache_ttl=300)
    for harness in run_harness(settings):
        cid, secret = harness.create_client()
        form = {"grant_type": CC, "client_id": cid, "client_secret": secret}
        assert harness.http.post("/oauth/token", data=form).status_code == 200  # cached now
        # Another process (or the CLI) deletes it; this process still has it cached.
        assert harness.call(harness.ctx.storage.delete_client, cid)
        r = harness.http.post("/oauth/token", data=form)
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "invalid_client"
        # Forgotten, so the next attempt is refused up front, no insert tried.
        assert harness.http.post("/oauth/token", data=form).status_code == 401


def test_a_lockout_is_made_once_per_kind_and_limit() -> None:
    def ctx(limit: int) -> Any:
        return SimpleNamespace(
            settings=SimpleNamespace(auth_failure_limit=limit, login_failure_limit=limit)
        )

    assert Lockout.for_clients(ctx(5)) is Lockout.for_clients(ctx(5))
    assert Lockout.for_clients(ctx(5)) == Lockout("authfail", 5)
    assert Lockout.for_clients(ctx(7)) == Lockout("authfail", 7)
    assert Lockout.for_users(ctx(5)) == Lockout("loginfail", 5)
