"""Redis killed, restarted empty or with its data, or hung: revocation still reaches guards.

The database is the truth and Redis a cache of it: a revocation made while
Redis is down, or lost because Redis came back empty, must be on the
deny-list a guard reads (`keyturn.guard.redis_denylist.RedisDenyList`) within
the documented bound once Redis is back. The guard is polled every 0.1 s for
at most `BOUND` seconds (the documented bound is about 2 s); the measured time
is printed. A hung Redis (SIGSTOP) must not hold token requests or
revocations for long.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from keyturn.guard.redis_denylist import RedisDenyList
from keyturn.guard.revocation import DenyListUnavailableError
from tests.faults.conftest import (
    CC,
    LiveServer,
    PrivateRedis,
    jti_of,
    start_server,
    stop_server,
    wait_for,
)

pytestmark = pytest.mark.faults

BOUND = 10.0
"""How long the test waits for the deny-list (generous: a loaded CI machine)."""


@pytest.fixture
def redis_root(tmp_path: Path) -> Path:
    root = tmp_path / "redis"
    root.mkdir()
    return root


@pytest.fixture
def server_with(tmp_path: Path) -> Iterator[list[LiveServer]]:
    """Servers a test starts, stopped at teardown."""
    started: list[LiveServer] = []
    yield started
    for server in started:
        stop_server(server)
        print(f"server log: {server.log().count('Traceback')} tracebacks")


def serve(tmp_path: Path, redis: PrivateRedis, started: list[LiveServer]) -> LiveServer:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"
    server = start_server(tmp_path, url, extra_env={"KEYTURN_REDIS_URL": redis.url})
    started.append(server)
    return server


def issue(server: LiveServer, auth: tuple[str, str], n: int) -> list[str]:
    with httpx2.Client(timeout=10) as http:
        answers = [
            http.post(server.token_url, data={"grant_type": CC}, auth=auth) for _ in range(n)
        ]
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    return [r.json()["access_token"] for r in answers]


def revoke(server: LiveServer, auth: tuple[str, str], token: str, timeout: float = 10) -> float:
    """Revoke ``token`` at /oauth/revoke; the answer must be 200. Returns its duration."""
    start = time.monotonic()
    r = httpx2.post(
        server.url + "/oauth/revoke",
        data={"token": token, "token_type_hint": "access_token"},
        auth=auth,
        timeout=timeout,
    )
    assert r.status_code == 200, r.text
    return time.monotonic() - start


def revoked(guard: RedisDenyList, jtis: list[str]) -> bool:
    try:
        return all(guard.is_revoked(jti) for jti in jtis)
    except DenyListUnavailableError:
        return False


@pytest.mark.parametrize("restart", ["empty", "with-its-data"])
def test_revocation_made_while_redis_is_down_reaches_the_guard(
    restart: str, tmp_path: Path, redis_root: Path, server_with: list[LiveServer]
) -> None:
    redis = PrivateRedis(redis_root, persistent=restart == "with-its-data")
    guard = RedisDenyList(redis.url, socket_timeout=0.5)
    try:
        redis.start()
        server = serve(tmp_path, redis, server_with)
        client = server.create_client()
        auth = (client["client_id"], client["client_secret"])
        before, during, kept = issue(server, auth, 3)
        revoke(server, auth, before)
        assert wait_for(lambda: revoked(guard, [jti_of(before)]), BOUND) is not None

        redis.kill()
        took = revoke(server, auth, during)  # 200 although Redis is down: the database has it
        if restart == "empty":
            redis.wipe()
        redis.start()
        restarted = time.monotonic()
        if restart == "with-its-data":  # the restart did keep what was published before
            assert revoked(guard, [jti_of(before)])
        recovery = wait_for(lambda: revoked(guard, [jti_of(during)]), BOUND)
        print(
            f"\nRedis killed, restarted {restart}: revocation during the outage answered 200 "
            f"in {took * 1000:.0f} ms; on the deny-list "
            f"{'never' if recovery is None else f'{recovery:.2f} s'} after Redis was back "
            f"({time.monotonic() - restarted:.2f} s)"
        )
        assert recovery is not None, f"not on the deny-list within {BOUND} s"
        assert revoked(guard, [jti_of(before)]), "the earlier revocation is back too"
        assert not revoked(guard, [jti_of(kept)]), "a live token is not denied"
    finally:
        guard.close()
        redis.kill()


def test_revocations_come_back_after_redis_restarts_empty(
    tmp_path: Path, redis_root: Path, server_with: list[LiveServer]
) -> None:
    redis = PrivateRedis(redis_root)
    guard = RedisDenyList(redis.url, socket_timeout=0.5)
    try:
        redis.start()
        server = serve(tmp_path, redis, server_with)
        client = server.create_client()
        auth = (client["client_id"], client["client_secret"])
        tokens = issue(server, auth, 21)
        kept = tokens.pop()
        for token in tokens:
            revoke(server, auth, token)
        jtis = [jti_of(t) for t in tokens]
        assert wait_for(lambda: revoked(guard, jtis), BOUND) is not None

        redis.kill()
        redis.wipe()
        redis.start()  # empty: every revocation it held is gone
        recovery = wait_for(lambda: revoked(guard, jtis), BOUND)
        print(
            f"\nRedis restarted empty: all {len(jtis)} revocations back on the deny-list "
            f"{'never' if recovery is None else f'in {recovery:.2f} s'}"
        )
        assert recovery is not None, f"not all back on the deny-list within {BOUND} s"
        assert not revoked(guard, [jti_of(kept)])
    finally:
        guard.close()
        redis.kill()


def test_a_hung_redis_does_not_hold_token_requests(
    tmp_path: Path, redis_root: Path, server_with: list[LiveServer]
) -> None:
    redis = PrivateRedis(redis_root)
    try:
        redis.start()
        server = serve(tmp_path, redis, server_with)
        client = server.create_client()
        auth = (client["client_id"], client["client_secret"])
        victim = issue(server, auth, 1)[0]

        def timed(n: int, seconds: float) -> list[float]:
            """Up to ``n`` sequential token requests in ``seconds``; each must be a 200 in 2 s."""
            times: list[float] = []
            deadline = time.monotonic() + seconds
            with httpx2.Client(timeout=2.0) as http:
                while len(times) < n and time.monotonic() < deadline:
                    start = time.monotonic()
                    r = http.post(server.token_url, data={"grant_type": CC}, auth=auth)
                    times.append(time.monotonic() - start)
                    assert r.status_code == 200, r.text
            return times

        before = timed(30, 10)
        redis.signal(signal.SIGSTOP)
        try:
            hung = timed(30, 10)
            revocation = revoke(server, auth, victim, timeout=2.0)
        finally:
            redis.signal(signal.SIGCONT)
        after = timed(10, 10)
        print(
            f"\nhung Redis: token request median before {statistics.median(before) * 1000:.1f} ms, "
            f"during {statistics.median(hung) * 1000:.1f} ms (max {max(hung) * 1000:.0f} ms, "
            f"n={len(hung)}), after {statistics.median(after) * 1000:.1f} ms; "
            f"revocation during the hang {revocation * 1000:.0f} ms"
        )
        assert statistics.median(hung) < 0.5, "a loose sanity bound: not a second per request"
        assert revocation < 2.0
    finally:
        redis.kill()
