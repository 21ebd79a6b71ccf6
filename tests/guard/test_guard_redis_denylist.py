"""The Redis deny-list against a real Redis: the key format is the server contract."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from joserfc.jwk import Key

from keyturn.core.errors import InvalidTokenError, TemporarilyUnavailableError
from keyturn.core.revocation import revoked_key_prefix
from keyturn.guard import DenyList, DenyListUnavailableError, TokenVerifier
from keyturn.guard.redis_denylist import RedisDenyList, revoked_key
from tests.conftest import REDIS_URL, redis_or_skip
from tests.guard.guard_support import claims_for, sign

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def server() -> Iterator[redis.Redis]:
    client = redis_or_skip()
    yield client
    client.close()


@pytest.fixture
def jti(server: redis.Redis) -> Iterator[str]:
    value = f"test-{uuid.uuid4().hex}"
    yield value
    server.delete(revoked_key(value))


def test_key_format_is_the_server_contract() -> None:
    assert revoked_key("abc") == "keyturn:revoked:abc"


def test_sync(server: redis.Redis, jti: str) -> None:
    deny = RedisDenyList(REDIS_URL)
    try:
        assert isinstance(deny, DenyList)
        assert deny.is_revoked(jti) is False
        server.set(f"keyturn:revoked:{jti}", "1", ex=60)
        assert deny.is_revoked(jti) is True
    finally:
        deny.close()


def test_entry_lapses_with_its_ttl(server: redis.Redis, jti: str) -> None:
    deny = RedisDenyList(REDIS_URL)
    try:
        server.set(f"keyturn:revoked:{jti}", "1", px=100)
        assert deny.is_revoked(jti) is True
        time.sleep(0.25)
        assert deny.is_revoked(jti) is False
    finally:
        deny.close()


@pytest.mark.anyio
async def test_async(server: redis.Redis, jti: str) -> None:
    deny = RedisDenyList(REDIS_URL)
    try:
        assert await deny.ais_revoked(jti) is False
        server.set(f"keyturn:revoked:{jti}", "1", ex=60)
        assert await deny.ais_revoked(jti) is True
    finally:
        await deny.aclose()


def test_verifier_rejects_a_revoked_token(
    server: redis.Redis, jti: str, make_verifier: Callable[..., TokenVerifier], rsa_key: Key
) -> None:
    deny = RedisDenyList(client=redis.Redis.from_url(REDIS_URL))
    verifier = make_verifier(revocation=deny)
    token = sign(rsa_key, claims_for(jti=jti))
    assert verifier.verify(token).jwt_id == jti
    server.set(revoked_key(jti), "1", ex=60)
    with pytest.raises(InvalidTokenError, match="revoked"):
        verifier.verify(token)
    deny._sync().close()


@pytest.mark.anyio
async def test_async_verifier_rejects_a_revoked_token(
    server: redis.Redis, jti: str, make_verifier: Callable[..., TokenVerifier], rsa_key: Key
) -> None:
    deny = RedisDenyList(REDIS_URL)
    verifier = make_verifier(revocation=deny)
    server.set(revoked_key(jti), "1", ex=60)
    try:
        with pytest.raises(InvalidTokenError, match="revoked"):
            await verifier.averify(sign(rsa_key, claims_for(jti=jti)))
    finally:
        await deny.aclose()


def test_unreachable_redis_fails_closed(
    make_verifier: Callable[..., TokenVerifier], rsa_key: Key
) -> None:
    deny = RedisDenyList("redis://127.0.0.1:1/0", socket_timeout=0.5)
    try:
        with pytest.raises(DenyListUnavailableError):
            deny.is_revoked("x")
        with pytest.raises(TemporarilyUnavailableError):
            make_verifier(revocation=deny).verify(sign(rsa_key))
    finally:
        deny.close()


def test_fail_open_accepts_unchecked_and_logs_each_change_once(
    make_verifier: Callable[..., TokenVerifier],
    rsa_key: Key,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deny = RedisDenyList("redis://127.0.0.1:1/0", socket_timeout=0.5, fail_open=True)
    try:
        with caplog.at_level("WARNING", logger="keyturn.guard"):
            assert deny.is_revoked("x") is False
            claims = make_verifier(revocation=deny).verify(sign(rsa_key))
            assert claims.subject
        assert [r.getMessage() for r in caplog.records] == [
            "Redis deny-list unreachable (ConnectionError); accepting tokens unchecked"
        ]
    finally:
        deny.close()


def test_needs_a_url_or_client() -> None:
    with pytest.raises(ValueError, match="URL or a client"):
        RedisDenyList()


def test_the_key_is_the_servers_namespace_plus_revoked() -> None:
    assert revoked_key_prefix("tenant-7:") == "tenant-7:revoked:"
    assert revoked_key("abc", revoked_key_prefix("tenant-7:")) == "tenant-7:revoked:abc"
    assert RedisDenyList(REDIS_URL).prefix == revoked_key_prefix()
