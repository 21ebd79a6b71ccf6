"""The shared Redis rate limiter, on the real Redis: one limit across processes."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from keyturn.server.redis_ratelimit import RedisRateLimiter
from tests.conftest import REDIS_PREFIX
from tests.server.conftest import make_settings, run_harness

REDIS_URL = os.environ.get("KEYTURN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.mark.anyio
async def test_two_limiters_share_one_bucket(redis_url: str) -> None:
    a = RedisRateLimiter(redis_url, prefix=REDIS_PREFIX)
    b = RedisRateLimiter(redis_url, prefix=REDIS_PREFIX)
    key = "test:" + secrets.token_hex(6)
    try:
        assert await a.acquire(key, 3, 60) is None
        assert await b.acquire(key, 3, 60) is None
        assert await a.blocked_for(key, 3, 60) is None
        assert await b.acquire(key, 3, 60) is None
        wait = await a.acquire(key, 3, 60)
        assert wait is not None
        assert 19 < wait <= 20.5
        blocked = await b.blocked_for(key, 3, 60)
        assert blocked is not None
        assert blocked > 19
        assert await a.acquire("test:" + secrets.token_hex(6), 3, 60) is None
        assert await a.acquire(key, 0, 60) is None, "0 means unlimited"
    finally:
        await a.close()
        await b.close()


@pytest.mark.anyio
async def test_unreachable_redis_falls_back_to_process_limits() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        assert await limiter.acquire("k", 1, 60) is None
        assert await limiter.acquire("k", 1, 60) is not None
        assert await limiter.blocked_for("k", 1, 60) is not None
    finally:
        await limiter.close()


def test_two_server_processes_share_the_issuance_limit(tmp_path: Path, redis_url: str) -> None:
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", redis_url=redis_url
    )
    for first in run_harness(settings):
        for second in run_harness(settings):
            cid, secret = first.create_client(rate_limit=2)
            form = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}
            assert first.http.post("/oauth/token", data=form).status_code == 200
            assert second.http.post("/oauth/token", data=form).status_code == 200
            r = first.http.post("/oauth/token", data=form)
            assert r.status_code == 429
            assert int(r.headers["retry-after"]) >= 1
            assert second.http.post("/oauth/token", data=form).status_code == 429
