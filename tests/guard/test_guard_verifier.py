"""TokenVerifier end to end over a mocked issuer: every failure mode of issue 6."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import httpx2
import pytest
from joserfc.jwk import Key, RSAKey

from keyturn.core.errors import InvalidTokenError, TemporarilyUnavailableError
from keyturn.guard import AccessTokenClaims, TokenVerifier
from keyturn.testing import FakeClock
from tests.guard.guard_support import (
    AUDIENCE,
    ISSUER,
    JWKS_PATH,
    METADATA_PATH,
    NOW,
    FakeIssuer,
    b64,
    claims_for,
    hs256_with,
    new_key,
    sign,
    unsigned,
)

MakeVerifier = Callable[..., TokenVerifier]


def test_verifies_a_keyturn_token_and_types_its_claims(
    verifier: TokenVerifier, rsa_key: Key, issuer: FakeIssuer
) -> None:
    payload = claims_for()
    claims = verifier.verify(sign(rsa_key, payload))
    assert isinstance(claims, AccessTokenClaims)
    assert (claims.subject, claims.client_id) == ("user-42", "shop-frontend")
    assert claims.scopes == {"orders:read", "profile"}
    assert claims.jwt_id == payload["jti"]
    assert dict(claims.raw) == payload
    # Discovery then JWKS, once; the second token is verified from the cache.
    verifier.verify(sign(rsa_key))
    assert issuer.hits == {METADATA_PATH: 1, JWKS_PATH: 1}


@pytest.mark.parametrize("kind", ["EC", "OKP"])
def test_es256_and_eddsa_tokens_verify(
    make_verifier: MakeVerifier, issuer: FakeIssuer, kind: str
) -> None:
    key = new_key(kind)
    issuer.keys.append(key)
    claims = make_verifier().verify(sign(key))
    assert claims.subject == "user-42"


def test_explicit_jwks_uri_skips_discovery(
    make_verifier: MakeVerifier, issuer: FakeIssuer, rsa_key: Key
) -> None:
    verifier = make_verifier(jwks_uri=ISSUER + JWKS_PATH)
    verifier.verify(sign(rsa_key))
    assert issuer.hits == {JWKS_PATH: 1}


class TestFailureModes:
    def test_expired(self, verifier: TokenVerifier, rsa_key: Key, clock: FakeClock) -> None:
        token = sign(rsa_key, claims_for(exp=int(NOW) + 60))
        verifier.verify(token)
        clock.advance(60 + verifier.leeway)
        with pytest.raises(InvalidTokenError, match="expired"):
            verifier.verify(token)

    def test_not_yet_valid(self, verifier: TokenVerifier, rsa_key: Key) -> None:
        token = sign(rsa_key, claims_for(nbf=int(NOW) + 3600))
        with pytest.raises(InvalidTokenError, match="not valid yet"):
            verifier.verify(token)

    def test_wrong_issuer(self, verifier: TokenVerifier, rsa_key: Key) -> None:
        with pytest.raises(InvalidTokenError, match="another issuer"):
            verifier.verify(sign(rsa_key, claims_for(iss="https://evil.test")))

    def test_wrong_audience(self, verifier: TokenVerifier, rsa_key: Key) -> None:
        with pytest.raises(InvalidTokenError, match="not meant for this API"):
            verifier.verify(sign(rsa_key, claims_for(aud="https://billing.example.test")))

    def test_wrong_key_under_a_known_kid(self, verifier: TokenVerifier, rsa_key: Key) -> None:
        impostor = new_key("RSA", kid=rsa_key.kid)
        with pytest.raises(InvalidTokenError, match="signature is invalid"):
            verifier.verify(sign(impostor))

    def test_tampered_payload(self, verifier: TokenVerifier, rsa_key: Key) -> None:
        header, _, signature = sign(rsa_key).split(".")
        forged = b64(
            b'{"iss":"%s","aud":"%s","sub":"admin"}' % (ISSUER.encode(), AUDIENCE.encode())
        )
        with pytest.raises(InvalidTokenError, match="signature is invalid"):
            verifier.verify(f"{header}.{forged}.{signature}")

    def test_alg_none_is_refused_before_any_key_lookup(
        self, verifier: TokenVerifier, rsa_key: Key, issuer: FakeIssuer
    ) -> None:
        token = unsigned({"alg": "none", "typ": "at+jwt", "kid": rsa_key.kid}, claims_for())
        with pytest.raises(InvalidTokenError, match="algorithm"):
            verifier.verify(token)
        assert issuer.hits == {}

    @pytest.mark.parametrize("encoding", ["pem", "jwk-n"])
    def test_hs256_signed_with_the_public_key(
        self, verifier: TokenVerifier, rsa_key: Key, issuer: FakeIssuer, encoding: str
    ) -> None:
        verifier.verify(sign(rsa_key))  # the keys are loaded: confusion would be possible now
        public = RSAKey.import_key(rsa_key.as_dict(private=False))
        secret = public.as_pem(private=False) if encoding == "pem" else str(public["n"]).encode()
        token = hs256_with(
            secret, {"alg": "HS256", "typ": "at+jwt", "kid": rsa_key.kid}, claims_for()
        )
        with pytest.raises(InvalidTokenError, match="algorithm"):
            verifier.verify(token)

    def test_rsa_key_used_for_an_ec_algorithm(
        self, verifier: TokenVerifier, rsa_key: Key, ec_key: Key
    ) -> None:
        # An ES256 token naming the RSA key's kid: the key's family must fit the alg.
        token = sign(ec_key, header={"kid": rsa_key.kid})
        with pytest.raises(InvalidTokenError, match="signature is invalid"):
            verifier.verify(token)

    def test_algorithm_outside_a_narrowed_allow_list(
        self, make_verifier: MakeVerifier, issuer: FakeIssuer, ec_key: Key
    ) -> None:
        issuer.keys.append(ec_key)
        with pytest.raises(InvalidTokenError, match="algorithm"):
            make_verifier(algorithms=["RS256"]).verify(sign(ec_key))

    def test_plain_jwt_type_is_refused(self, verifier: TokenVerifier, rsa_key: Key) -> None:
        with pytest.raises(InvalidTokenError, match="not a JWT access token"):
            verifier.verify(sign(rsa_key, header={"typ": "JWT"}))

    @pytest.mark.parametrize(
        "token",
        ["", "abc", "a.b", "a.b.c.d", "é.é.é", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 200_000],
    )
    def test_malformed(self, verifier: TokenVerifier, token: str) -> None:
        with pytest.raises(InvalidTokenError, match="malformed"):
            verifier.verify(token)

    def test_payload_that_is_not_json(self, verifier: TokenVerifier, rsa_key: Key) -> None:
        from joserfc import jws

        raw = jws.serialize_compact(
            {"alg": "RS256", "typ": "at+jwt", "kid": rsa_key.kid}, b"not json", rsa_key
        )
        with pytest.raises(InvalidTokenError, match=r"signature is invalid|malformed"):
            verifier.verify(raw)


class TestConfiguration:
    @pytest.mark.parametrize("algorithms", [["none"], ["HS256"], ["RS256", "HS512"], []])
    def test_refuses_symmetric_or_empty_allow_lists(self, algorithms: list[str]) -> None:
        with pytest.raises(ValueError, match="algorithm"):
            TokenVerifier(ISSUER, AUDIENCE, algorithms=algorithms)

    def test_refuses_empty_issuer_or_audience(self) -> None:
        with pytest.raises(ValueError, match="non-empty"):
            TokenVerifier("", AUDIENCE)
        with pytest.raises(ValueError, match="non-empty"):
            TokenVerifier(ISSUER, [])

    def test_accepts_any_of_several_audiences(
        self, make_verifier: MakeVerifier, rsa_key: Key
    ) -> None:
        verifier = make_verifier()
        several = TokenVerifier(
            ISSUER, ["urn:other", AUDIENCE], http_client=verifier._client, clock=verifier._clock
        )
        assert several.verify(sign(rsa_key)).audience == (AUDIENCE,)


class TestKeyRefresh:
    def test_unknown_kid_flood_fetches_the_jwks_a_bounded_number_of_times(
        self, make_verifier: MakeVerifier, issuer: FakeIssuer, rsa_key: Key, clock: FakeClock
    ) -> None:
        verifier = make_verifier(jwks_min_refetch_interval=30)
        verifier.verify(sign(rsa_key))
        attacker = new_key("RSA")
        for _ in range(200):
            token = sign(attacker, header={"kid": uuid.uuid4().hex})
            with pytest.raises(InvalidTokenError, match="unknown key"):
                verifier.verify(token)
            clock.advance(0.5)  # 100 s of flood: at most one refetch per 30 s
        assert issuer.hits[JWKS_PATH] <= 1 + 100 // 30 + 1
        assert issuer.hits[METADATA_PATH] == 1
        # The real key still verifies from the cache, without another fetch.
        before = issuer.hits[JWKS_PATH]
        verifier.verify(sign(rsa_key, claims_for(clock.now)))
        assert issuer.hits[JWKS_PATH] == before

    def test_flood_within_one_interval_causes_one_refetch(
        self, verifier: TokenVerifier, issuer: FakeIssuer, rsa_key: Key, clock: FakeClock
    ) -> None:
        verifier.verify(sign(rsa_key))
        clock.advance(verifier._keys.min_refetch_interval)
        for _ in range(50):
            with pytest.raises(InvalidTokenError):
                verifier.verify(sign(rsa_key, header={"kid": uuid.uuid4().hex}))
        assert issuer.hits[JWKS_PATH] == 2

    def test_rotation_publish_then_sign(
        self, verifier: TokenVerifier, issuer: FakeIssuer, rsa_key: Key, clock: FakeClock
    ) -> None:
        verifier.verify(sign(rsa_key))
        successor = new_key("RSA", kid="rsa-next")
        issuer.keys.append(successor)  # published before it signs
        clock.advance(verifier._keys.min_refetch_interval)
        claims = verifier.verify(sign(successor, claims_for(clock.now)))
        assert claims.subject == "user-42"
        assert issuer.hits[JWKS_PATH] == 2
        verifier.verify(sign(rsa_key, claims_for(clock.now)))  # the old key still verifies

    def test_withdrawn_key_stops_verifying_after_max_age(
        self,
        make_verifier: MakeVerifier,
        issuer: FakeIssuer,
        rsa_key: Key,
        other_rsa_key: Key,
        clock: FakeClock,
    ) -> None:
        verifier = make_verifier(jwks_max_age=60)
        issuer.keys.append(other_rsa_key)
        verifier.verify(sign(other_rsa_key))
        issuer.keys.remove(other_rsa_key)
        clock.advance(61)
        with pytest.raises(InvalidTokenError, match="unknown key"):
            verifier.verify(sign(other_rsa_key, claims_for(clock.now)))
        assert issuer.hits[JWKS_PATH] == 2

    def test_stale_keys_keep_serving_when_the_refresh_fails(
        self, make_verifier: MakeVerifier, issuer: FakeIssuer, rsa_key: Key, clock: FakeClock
    ) -> None:
        verifier = make_verifier(jwks_max_age=60)
        verifier.verify(sign(rsa_key))
        issuer.down = True
        clock.advance(61)
        assert verifier.verify(sign(rsa_key, claims_for(clock.now))).subject == "user-42"
        assert issuer.hits == {METADATA_PATH: 1, JWKS_PATH: 2}
        # The failure is rate-limited too: no fetch until the interval has passed.
        verifier.verify(sign(rsa_key, claims_for(clock.now)))
        assert issuer.hits == {METADATA_PATH: 1, JWKS_PATH: 2}
        issuer.down = False
        clock.advance(verifier._keys.min_refetch_interval)
        verifier.verify(sign(rsa_key, claims_for(clock.now)))
        assert issuer.hits == {METADATA_PATH: 2, JWKS_PATH: 3}  # rediscovered after the failure

    def test_issuer_down_at_start_is_503_not_401_and_is_rate_limited(
        self, verifier: TokenVerifier, issuer: FakeIssuer, rsa_key: Key, clock: FakeClock
    ) -> None:
        issuer.down = True
        for _ in range(20):
            with pytest.raises(TemporarilyUnavailableError) as info:
                verifier.verify(sign(rsa_key))
            assert info.value.status_code == 503
            assert int(info.value.headers["Retry-After"]) >= 1
        assert sum(issuer.hits.values()) == 1
        issuer.down = False
        clock.advance(verifier._keys.min_refetch_interval)
        assert verifier.verify(sign(rsa_key, claims_for(clock.now))).subject == "user-42"

    def test_unreachable_issuer_is_503(self, clock: FakeClock, rsa_key: Key) -> None:
        def refuse(request: httpx2.Request) -> httpx2.Response:
            raise httpx2.ConnectError("refused", request=request)

        with httpx2.Client(transport=httpx2.MockTransport(refuse)) as client:
            verifier = TokenVerifier(ISSUER, AUDIENCE, http_client=client, clock=clock)
            with pytest.raises(TemporarilyUnavailableError):
                verifier.verify(sign(rsa_key))

    @pytest.mark.parametrize(
        "jwks",
        [
            {"keys": []},
            {"nokeys": 1},
            [],
            {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "rsa-1"}]},
        ],
    )
    def test_unusable_jwks_is_503(
        self,
        verifier: TokenVerifier,
        issuer: FakeIssuer,
        rsa_key: Key,
        jwks: object,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(issuer, "jwks", lambda: jwks)
        with pytest.raises(TemporarilyUnavailableError):
            verifier.verify(sign(rsa_key))

    def test_jwks_skips_entries_it_cannot_use(
        self,
        verifier: TokenVerifier,
        issuer: FakeIssuer,
        rsa_key: Key,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        good = rsa_key.as_dict(private=False)
        junk = [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "kid": "broken", "n": "AQAB"},
            {"kty": "PQC", "kid": "future"},
            {**good, "kid": "enc", "use": "enc"},
            {**good, "kid": None},
            "not a key",
        ]
        monkeypatch.setattr(issuer, "jwks", lambda: {"keys": [*junk, good]})
        verifier.verify(sign(rsa_key))
        assert verifier._keys.kids == {rsa_key.kid}

    def test_private_members_in_a_jwks_are_not_kept(
        self,
        verifier: TokenVerifier,
        issuer: FakeIssuer,
        rsa_key: Key,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(issuer, "jwks", lambda: {"keys": [rsa_key.as_dict(private=True)]})
        verifier.verify(sign(rsa_key))
        cached = verifier._keys.get(str(rsa_key.kid))
        assert cached is not None
        assert not cached.key.is_private

    def test_metadata_for_another_issuer_is_refused(
        self, verifier: TokenVerifier, issuer: FakeIssuer, rsa_key: Key
    ) -> None:
        issuer.metadata_issuer = "https://evil.test"
        with pytest.raises(TemporarilyUnavailableError):
            verifier.verify(sign(rsa_key))
        assert JWKS_PATH not in issuer.hits

    def test_concurrent_threads_at_cold_start_fetch_once(
        self, issuer: FakeIssuer, rsa_key: Key, clock: FakeClock
    ) -> None:
        issuer.on_request = lambda request: time.sleep(0.05)  # hold the fetch open
        tokens = [sign(rsa_key) for _ in range(8)]
        results: list[object] = []
        with issuer.client() as client:
            verifier = TokenVerifier(ISSUER, AUDIENCE, http_client=client, clock=clock)

            def work(token: str) -> None:
                try:
                    results.append(verifier.verify(token).subject)
                except Exception as exc:  # collected and asserted below
                    results.append(exc)

            threads = [threading.Thread(target=work, args=(t,)) for t in tokens]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=10)
        assert results == ["user-42"] * 8
        assert issuer.hits == {METADATA_PATH: 1, JWKS_PATH: 1}


def test_owned_client_is_created_and_closed(rsa_key: Key) -> None:
    verifier = TokenVerifier(ISSUER, AUDIENCE)
    with verifier:
        client = verifier._sync_client()
        assert not client.is_closed
    assert client.is_closed


def test_given_client_is_left_open(issuer: FakeIssuer) -> None:
    with issuer.client() as client:
        with TokenVerifier(ISSUER, AUDIENCE, http_client=client):
            pass
        assert not client.is_closed


PATH_ISSUER = "https://idp.example/tenant/a"
PATH_METADATA = "/.well-known/oauth-authorization-server/tenant/a"  # RFC 8414 §3.1


def test_issuer_with_a_path_is_discovered_where_rfc_8414_puts_it(
    rsa_key: Key, clock: FakeClock
) -> None:
    issuer = FakeIssuer(rsa_key, issuer=PATH_ISSUER, metadata_path=PATH_METADATA)
    token = sign(rsa_key, claims_for(iss=PATH_ISSUER))
    with issuer.client() as client:
        verifier = TokenVerifier(PATH_ISSUER, AUDIENCE, http_client=client, clock=clock)
        assert verifier.verify(token).subject == "user-42"
    assert issuer.hits == {PATH_METADATA: 1, "/tenant/a" + JWKS_PATH: 1}


@pytest.mark.anyio
async def test_issuer_with_a_path_is_discovered_the_same_way_async(
    rsa_key: Key, clock: FakeClock
) -> None:
    issuer = FakeIssuer(rsa_key, issuer=PATH_ISSUER, metadata_path=PATH_METADATA)
    token = sign(rsa_key, claims_for(iss=PATH_ISSUER))
    async with issuer.async_client() as client:
        verifier = TokenVerifier(PATH_ISSUER, AUDIENCE, async_http_client=client, clock=clock)
        assert (await verifier.averify(token)).subject == "user-42"
    assert issuer.hits == {PATH_METADATA: 1, "/tenant/a" + JWKS_PATH: 1}


@pytest.mark.parametrize("published", [PATH_ISSUER + "/", "https://IDP.example/tenant/a"])
def test_metadata_issuer_must_be_identical_not_similar(
    rsa_key: Key, clock: FakeClock, published: str
) -> None:
    issuer = FakeIssuer(rsa_key, issuer=PATH_ISSUER, metadata_path=PATH_METADATA)
    issuer.metadata_issuer = published
    with issuer.client() as client:
        verifier = TokenVerifier(PATH_ISSUER, AUDIENCE, http_client=client, clock=clock)
        with pytest.raises(TemporarilyUnavailableError):
            verifier.verify(sign(rsa_key, claims_for(iss=PATH_ISSUER)))
    assert issuer.hits == {PATH_METADATA: 1}
