"""Revocation awareness: introspection with a short cache, or a deny-list."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import parse_qs, unquote_plus

import httpx2
import pytest
from joserfc.jwk import Key

from keyturn.core.errors import InvalidTokenError, TemporarilyUnavailableError
from keyturn.guard import DenyList, DenyListUnavailableError, Introspection, TokenVerifier
from keyturn.testing import FakeClock
from tests.guard.guard_support import (
    AUDIENCE,
    INTROSPECT_PATH,
    ISSUER,
    JWKS_PATH,
    METADATA_PATH,
    NOW,
    FakeIssuer,
    claims_for,
    sign,
)

MakeVerifier = Callable[..., TokenVerifier]


class MemoryDenyList:
    """A DenyList in a set: the protocol, with nothing else in the way."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.down = False
        self.calls = 0

    def is_revoked(self, jti: str) -> bool:
        self.calls += 1
        if self.down:
            raise DenyListUnavailableError("down")
        return jti in self.revoked

    async def ais_revoked(self, jti: str) -> bool:
        return self.is_revoked(jti)


class TestIntrospection:
    def test_revoked_token_is_401(
        self, make_verifier: MakeVerifier, issuer: FakeIssuer, rsa_key: Key
    ) -> None:
        verifier = make_verifier(revocation=Introspection("guard", "s3cret"))
        payload = claims_for()
        issuer.revoked.add(payload["jti"])
        with pytest.raises(InvalidTokenError, match="revoked"):
            verifier.verify(sign(rsa_key, payload))
        expected = "Basic " + base64.b64encode(b"guard:s3cret").decode()
        assert issuer.introspection_auth == [expected]

    def test_active_answer_is_cached_for_cache_ttl(
        self, make_verifier: MakeVerifier, issuer: FakeIssuer, rsa_key: Key, clock: FakeClock
    ) -> None:
        verifier = make_verifier(revocation=Introspection("guard", "s", cache_ttl=5))
        payload = claims_for()
        token = sign(rsa_key, payload)
        verifier.verify(token)
        verifier.verify(token)
        assert issuer.hits[INTROSPECT_PATH] == 1
        issuer.revoked.add(payload["jti"])
        clock.advance(4)
        verifier.verify(token)  # still inside the cache window: the documented trade-off
        clock.advance(1)
        with pytest.raises(InvalidTokenError, match="revoked"):
            verifier.verify(token)
        assert issuer.hits[INTROSPECT_PATH] == 2

    def test_endpoint_comes_from_metadata_even_with_explicit_jwks_uri(
        self, make_verifier: MakeVerifier, issuer: FakeIssuer, rsa_key: Key
    ) -> None:
        verifier = make_verifier(
            jwks_uri=ISSUER + JWKS_PATH, revocation=Introspection("guard", "s")
        )
        verifier.verify(sign(rsa_key))
        assert issuer.hits == {JWKS_PATH: 1, METADATA_PATH: 1, INTROSPECT_PATH: 1}

    def test_explicit_endpoint(
        self, make_verifier: MakeVerifier, issuer: FakeIssuer, rsa_key: Key
    ) -> None:
        introspection = Introspection("guard", "s", endpoint=ISSUER + INTROSPECT_PATH)
        verifier = make_verifier(jwks_uri=ISSUER + JWKS_PATH, revocation=introspection)
        verifier.verify(sign(rsa_key))
        assert METADATA_PATH not in issuer.hits

    def test_unreachable_introspection_fails_closed(
        self, make_verifier: MakeVerifier, issuer: FakeIssuer, rsa_key: Key
    ) -> None:
        verifier = make_verifier(revocation=Introspection("guard", "s"))
        verifier.verify(sign(rsa_key, claims_for(jti="first")))  # keys loaded
        issuer.down = True
        with pytest.raises(TemporarilyUnavailableError) as info:
            verifier.verify(sign(rsa_key))
        assert info.value.status_code == 503

    @pytest.mark.parametrize("body", [{"active": "yes"}, {}, ["active"]])
    def test_malformed_introspection_answer_fails_closed(
        self, rsa_key: Key, issuer: FakeIssuer, clock: FakeClock, body: object
    ) -> None:
        def handler(request: httpx2.Request) -> httpx2.Response:
            if request.url.path == INTROSPECT_PATH:
                return httpx2.Response(200, json=body)
            return issuer.handler(request)

        with httpx2.Client(transport=httpx2.MockTransport(handler)) as client:
            verifier = TokenVerifier(
                ISSUER,
                AUDIENCE,
                http_client=client,
                clock=clock,
                revocation=Introspection("guard", "s"),
            )
            with pytest.raises(TemporarilyUnavailableError):
                verifier.verify(sign(rsa_key))

    @pytest.mark.anyio
    async def test_async_revoked(
        self, make_verifier: MakeVerifier, issuer: FakeIssuer, rsa_key: Key
    ) -> None:
        verifier = make_verifier(revocation=Introspection("guard", "s"))
        payload = claims_for()
        issuer.revoked.add(payload["jti"])
        with pytest.raises(InvalidTokenError, match="revoked"):
            await verifier.averify(sign(rsa_key, payload))
        assert (await verifier.averify(sign(rsa_key))).subject == "user-42"

    def test_cache_is_bounded_and_never_outlives_the_token(self) -> None:
        intro = Introspection("guard", "s", cache_ttl=60, max_entries=3)
        for i in range(10):
            intro.remember(f"jti-{i}", True, now=NOW, expires_at=NOW + 600)
        assert [intro.cached(f"jti-{i}", NOW) for i in range(10)] == [None] * 7 + [True] * 3
        intro.remember("short", True, now=NOW, expires_at=NOW + 2)
        assert intro.cached("short", NOW + 1) is True
        assert intro.cached("short", NOW + 2) is None

    def test_secret_not_in_repr(self) -> None:
        assert "s3cret" not in repr(Introspection("guard", "s3cret"))


class TestDenyList:
    def test_memory_deny_list_satisfies_the_protocol(self) -> None:
        assert isinstance(MemoryDenyList(), DenyList)

    def test_revoked_jti_is_401(self, make_verifier: MakeVerifier, rsa_key: Key) -> None:
        deny = MemoryDenyList()
        verifier = make_verifier(revocation=deny)
        deny.revoked.add("gone")
        with pytest.raises(InvalidTokenError, match="revoked"):
            verifier.verify(sign(rsa_key, claims_for(jti="gone")))
        assert verifier.verify(sign(rsa_key, claims_for(jti="alive"))).jwt_id == "alive"

    def test_deny_list_is_not_asked_about_invalid_tokens(
        self, make_verifier: MakeVerifier, rsa_key: Key
    ) -> None:
        deny = MemoryDenyList()
        verifier = make_verifier(revocation=deny)
        with pytest.raises(InvalidTokenError):
            verifier.verify(sign(rsa_key, claims_for(aud="https://other.test")))
        assert deny.calls == 0

    def test_deny_list_down_fails_closed(self, make_verifier: MakeVerifier, rsa_key: Key) -> None:
        deny = MemoryDenyList()
        deny.down = True
        with pytest.raises(TemporarilyUnavailableError):
            make_verifier(revocation=deny).verify(sign(rsa_key))

    @pytest.mark.anyio
    async def test_async_deny_list(self, make_verifier: MakeVerifier, rsa_key: Key) -> None:
        deny = MemoryDenyList()
        deny.revoked.add("gone")
        verifier = make_verifier(revocation=deny)
        with pytest.raises(InvalidTokenError, match="revoked"):
            await verifier.averify(sign(rsa_key, claims_for(jti="gone")))
        deny.down = True
        with pytest.raises(TemporarilyUnavailableError):
            await verifier.averify(sign(rsa_key))


@pytest.mark.parametrize("secret", ["p+a%2Fss", "with:colon", "spa ce", "caf\u00e9"])
def test_introspection_credentials_are_form_encoded_before_basic(secret: str) -> None:
    """RFC 6749 §2.3.1, as the Keyturn server decodes them (unquote_plus after base64)."""
    request = Introspection("guard:1", secret).request("https://issuer.test/introspect", "t")
    scheme, _, value = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    client_id, _, encoded_secret = base64.b64decode(value).decode().partition(":")
    assert (unquote_plus(client_id), unquote_plus(encoded_secret)) == ("guard:1", secret)
    assert parse_qs(request.body.decode()) == {
        "token": ["t"],
        "token_type_hint": ["access_token"],
    }
