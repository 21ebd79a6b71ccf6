"""Header and claim rules of RFC 9068, as pure functions of their inputs."""

from __future__ import annotations

from typing import Any

import pytest

from keyturn.core.errors import InvalidTokenError
from keyturn.guard.claims import check_header, validate_claims
from tests.guard.guard_support import AUDIENCE, ISSUER, NOW, claims_for

ALGS = frozenset({"RS256", "ES256"})


def validate(payload: Any, *, now: float = NOW, leeway: float = 0.0) -> Any:
    return validate_claims(
        payload, issuer=ISSUER, audiences=frozenset({AUDIENCE}), now=now, leeway=leeway
    )


class TestHeader:
    def test_returns_the_kid(self) -> None:
        assert check_header({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}, ALGS) == "k1"

    @pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
    def test_accepts_the_rfc9068_types(self, typ: str) -> None:
        assert check_header({"alg": "ES256", "typ": typ, "kid": "k"}, ALGS) == "k"

    @pytest.mark.parametrize("alg", ["none", "HS256", "RS512", None, 1])
    def test_refuses_algorithms_outside_the_allow_list(self, alg: Any) -> None:
        with pytest.raises(InvalidTokenError, match="algorithm"):
            check_header({"alg": alg, "typ": "at+jwt", "kid": "k"}, ALGS)

    @pytest.mark.parametrize("typ", [None, "JWT", "jwt", "id_token+jwt", 7])
    def test_refuses_other_token_types(self, typ: Any) -> None:
        header = {"alg": "RS256", "typ": typ, "kid": "k"}
        with pytest.raises(InvalidTokenError, match="not a JWT access token"):
            check_header(header, ALGS)

    def test_refuses_critical_extensions(self) -> None:
        header = {"alg": "RS256", "typ": "at+jwt", "kid": "k", "crit": ["b64"], "b64": False}
        with pytest.raises(InvalidTokenError, match="extension"):
            check_header(header, ALGS)

    @pytest.mark.parametrize("kid", [None, "", 3])
    def test_requires_a_kid(self, kid: Any) -> None:
        with pytest.raises(InvalidTokenError, match="signing key"):
            check_header({"alg": "RS256", "typ": "at+jwt", "kid": kid}, ALGS)


class TestClaims:
    def test_types_the_claims(self) -> None:
        payload = claims_for(scope="orders:read  orders:write", acr="2")
        claims = validate(payload)
        assert claims.subject == "user-42"
        assert claims.client_id == "shop-frontend"
        assert claims.scopes == frozenset({"orders:read", "orders:write"})
        assert claims.issuer == ISSUER
        assert claims.audience == (AUDIENCE,)
        assert claims.expires_at == int(NOW) + 300
        assert claims.issued_at == int(NOW)
        assert claims.jwt_id == payload["jti"]
        assert claims.not_before is None
        assert claims.raw["acr"] == "2"
        assert claims.has_scopes("orders:read")
        assert not claims.has_scopes("orders:read", "admin")
        with pytest.raises(TypeError):
            claims.raw["acr"] = "3"  # type: ignore[index, unused-ignore]

    def test_no_scope_claim_means_no_scopes(self) -> None:
        assert validate(claims_for(scope=None)).scopes == frozenset()

    def test_audience_list_is_accepted_when_it_names_us(self) -> None:
        claims = validate(claims_for(aud=["https://other.test", AUDIENCE]))
        assert claims.audience == ("https://other.test", AUDIENCE)

    @pytest.mark.parametrize("aud", ["https://other.test", ["https://other.test"]])
    def test_wrong_audience(self, aud: Any) -> None:
        with pytest.raises(InvalidTokenError, match="not meant for this API"):
            validate(claims_for(aud=aud))

    @pytest.mark.parametrize(
        "iss", ["https://evil.test", ISSUER + "/", "HTTPS://auth.example.test"]
    )
    def test_wrong_issuer(self, iss: str) -> None:
        with pytest.raises(InvalidTokenError, match="another issuer"):
            validate(claims_for(iss=iss))

    def test_expired_at_exp_exactly(self) -> None:
        payload = claims_for(exp=int(NOW))
        with pytest.raises(InvalidTokenError, match="expired"):
            validate(payload)

    def test_leeway_absorbs_clock_skew_on_exp(self) -> None:
        payload = claims_for(exp=int(NOW) - 5)
        assert validate(payload, leeway=10).subject == "user-42"
        with pytest.raises(InvalidTokenError, match="expired"):
            validate(payload, leeway=5)

    def test_not_yet_valid(self) -> None:
        payload = claims_for(nbf=int(NOW) + 60)
        with pytest.raises(InvalidTokenError, match="not valid yet"):
            validate(payload, leeway=30)
        assert validate(payload, leeway=60).not_before == int(NOW) + 60

    def test_issued_in_the_future(self) -> None:
        with pytest.raises(InvalidTokenError, match="issued in the future"):
            validate(claims_for(iat=int(NOW) + 60), leeway=10)

    @pytest.mark.parametrize("name", ["iss", "sub", "aud", "client_id", "iat", "exp", "jti"])
    def test_rfc9068_required_claims(self, name: str) -> None:
        payload = claims_for()
        del payload[name]
        with pytest.raises(InvalidTokenError) as info:
            validate(payload)
        assert name in (info.value.detail or "") or "issuer" in str(info.value)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("exp", True),
            ("exp", "1750000300"),
            ("exp", float("inf")),
            ("iat", float("nan")),
            ("iat", None),
            ("sub", 42),
            ("aud", []),
            ("aud", [1]),
            ("scope", ["orders:read"]),
            ("nbf", "soon"),
        ],
    )
    def test_ill_typed_claims(self, name: str, value: Any) -> None:
        payload = claims_for()
        payload[name] = value
        with pytest.raises(InvalidTokenError, match="malformed"):
            validate(payload)

    @pytest.mark.parametrize("payload", [[], "x", 3, None])
    def test_payload_must_be_an_object(self, payload: Any) -> None:
        with pytest.raises(InvalidTokenError, match="malformed"):
            validate(payload)
