"""averify: the same flows as verify, driven by an AsyncClient under an anyio lock."""

from __future__ import annotations

import uuid

import anyio
import httpx2
import pytest
from joserfc.jwk import Key

from keyturn.core.errors import InvalidTokenError, TemporarilyUnavailableError
from keyturn.guard import TokenVerifier
from keyturn.testing import FakeClock
from tests.guard.guard_support import (
    AUDIENCE,
    ISSUER,
    JWKS_PATH,
    METADATA_PATH,
    FakeIssuer,
    claims_for,
    new_key,
    sign,
)

pytestmark = pytest.mark.anyio


async def test_averify_verifies(verifier: TokenVerifier, rsa_key: Key, issuer: FakeIssuer) -> None:
    claims = await verifier.averify(sign(rsa_key))
    assert claims.subject == "user-42"
    assert issuer.hits == {METADATA_PATH: 1, JWKS_PATH: 1}


async def test_sync_and_async_share_one_key_cache(
    verifier: TokenVerifier, rsa_key: Key, issuer: FakeIssuer
) -> None:
    verifier.verify(sign(rsa_key))
    await verifier.averify(sign(rsa_key))
    assert issuer.hits[JWKS_PATH] == 1


async def test_averify_rejects_like_verify(verifier: TokenVerifier, rsa_key: Key) -> None:
    with pytest.raises(InvalidTokenError, match="signature is invalid"):
        await verifier.averify(sign(new_key("RSA", kid=rsa_key.kid)))


async def test_concurrent_cold_start_fetches_once(
    issuer: FakeIssuer, rsa_key: Key, clock: FakeClock
) -> None:
    async def slow(request: httpx2.Request) -> httpx2.Response:
        await anyio.sleep(0.05)  # every request waits while the others pile up
        return issuer.handler(request)

    subjects: list[str] = []
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(slow)) as client:
        verifier = TokenVerifier(ISSUER, AUDIENCE, async_http_client=client, clock=clock)

        async def one() -> None:
            subjects.append((await verifier.averify(sign(rsa_key))).subject)

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
    assert subjects == ["user-42"] * 20
    assert issuer.hits == {METADATA_PATH: 1, JWKS_PATH: 1}


async def test_concurrent_unknown_kid_flood_is_bounded(
    verifier: TokenVerifier, issuer: FakeIssuer, rsa_key: Key, clock: FakeClock
) -> None:
    await verifier.averify(sign(rsa_key))
    clock.advance(verifier._keys.min_refetch_interval)
    failures: list[str] = []

    async def garbage() -> None:
        try:
            await verifier.averify(sign(rsa_key, header={"kid": uuid.uuid4().hex}))
        except InvalidTokenError as exc:
            failures.append(exc.error)

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(garbage)
    assert failures == ["invalid_token"] * 100
    assert issuer.hits[JWKS_PATH] == 2


async def test_averify_issuer_down_is_503(
    verifier: TokenVerifier, issuer: FakeIssuer, rsa_key: Key
) -> None:
    issuer.down = True
    with pytest.raises(TemporarilyUnavailableError):
        await verifier.averify(sign(rsa_key, claims_for()))


async def test_aclose_closes_owned_clients() -> None:
    verifier = TokenVerifier(ISSUER, AUDIENCE)
    async with verifier:
        client = verifier._async_http()
        sync_client = verifier._sync_client()
    assert client.is_closed
    assert sync_client.is_closed


async def test_aauthenticate_asgi_reads_raw_headers_and_checks_scopes(
    verifier: TokenVerifier, rsa_key: Key
) -> None:
    from keyturn.core.errors import InvalidRequestError
    from keyturn.guard import MissingScopeError, MissingTokenError, aauthenticate_asgi

    token = sign(rsa_key)
    headers = [(b"host", b"api.test"), (b"authorization", f"Bearer {token}".encode())]
    claims = await aauthenticate_asgi(verifier, headers)
    assert claims.subject == "user-42"
    assert await aauthenticate_asgi(verifier, headers, sorted(claims.scopes)) == claims
    with pytest.raises(MissingScopeError):
        await aauthenticate_asgi(verifier, headers, ["admin"])
    with pytest.raises(MissingTokenError):
        await aauthenticate_asgi(verifier, [(b"host", b"api.test")])
    with pytest.raises(InvalidRequestError):
        await aauthenticate_asgi(verifier, [*headers, headers[1]])
