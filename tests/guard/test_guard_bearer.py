"""RFC 6750 on the wire: header parsing and the challenge answers."""

from __future__ import annotations

from typing import Any

import pytest

from keyturn.core.errors import (
    InvalidRequestError,
    InvalidTokenError,
    TemporarilyUnavailableError,
)
from keyturn.guard import (
    MissingScopeError,
    MissingTokenError,
    bearer_token,
    challenge,
    check_scopes,
)
from keyturn.guard.bearer import MAX_REMEMBERED_HEADER, _token_of, bearer_token_in
from keyturn.guard.claims import validate_claims
from tests.guard.guard_support import claims_for

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_~+/=="


class TestBearerToken:
    @pytest.mark.parametrize(
        "header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER  {TOKEN}", [f"Bearer {TOKEN}"]]
    )
    def test_reads_the_token(self, header: Any) -> None:
        assert bearer_token(header) == TOKEN

    @pytest.mark.parametrize(
        "header", [None, [], "Basic dXNlcjpwYXNz", "Digest x", "Token abc", ""]
    )
    def test_no_bearer_credentials(self, header: Any) -> None:
        with pytest.raises(MissingTokenError):
            bearer_token(header)

    @pytest.mark.parametrize(
        "header",
        ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", 'Bearer "abc"', "Bearer a=b", "Bearer é"],
    )
    def test_malformed_header_is_invalid_request(self, header: str) -> None:
        with pytest.raises(InvalidRequestError) as info:
            bearer_token(header)
        assert not isinstance(info.value, InvalidTokenError)
        assert info.value.status_code == 400

    def test_two_headers_is_invalid_request(self) -> None:
        with pytest.raises(InvalidRequestError, match="exactly one"):
            bearer_token([f"Bearer {TOKEN}", f"Bearer {TOKEN}"])


def asgi_headers(*authorization: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"api.test"), *((b"authorization", v) for v in authorization)]


class TestBearerTokenIn:
    """The ASGI form reads raw header bytes and remembers what parsed."""

    def test_reads_the_token_and_returns_the_same_string_for_the_same_header(self) -> None:
        first = bearer_token_in(asgi_headers(f"Bearer {TOKEN}".encode()))
        again = bearer_token_in(asgi_headers(f"Bearer {TOKEN}".encode()))  # a new bytes object
        assert first == TOKEN
        assert again is first  # so the verifier's memory finds it by identity

    @pytest.mark.parametrize(
        "headers",
        [asgi_headers(), asgi_headers(b"Basic dXNlcjpwYXNz"), asgi_headers(b"")],
    )
    def test_no_bearer_credentials(self, headers: list[tuple[bytes, bytes]]) -> None:
        for _ in range(2):
            with pytest.raises(MissingTokenError):
                bearer_token_in(headers)

    @pytest.mark.parametrize(
        "value",
        [b"Bearer", b"Bearer a b", b"Bearer a\x00b", b"Bearer \xc3\xa9", b"Bearer \xed\xa0\x80"],
    )
    def test_malformed_header_is_invalid_request_every_time(self, value: bytes) -> None:
        """NUL, non-ASCII and a UTF-8 lone surrogate: 400 on every try, never remembered."""
        remembered = _token_of.cache_info().currsize
        for _ in range(2):
            with pytest.raises(InvalidRequestError) as info:
                bearer_token_in(asgi_headers(value))
            assert info.value.status_code == 400
        assert _token_of.cache_info().currsize == remembered

    def test_two_headers_is_invalid_request(self) -> None:
        value = f"Bearer {TOKEN}".encode()
        bearer_token_in(asgi_headers(value))  # remembered alone
        with pytest.raises(InvalidRequestError, match="exactly one"):
            bearer_token_in(asgi_headers(value, value))

    def test_a_long_header_is_read_but_not_remembered(self) -> None:
        token = "a" * MAX_REMEMBERED_HEADER
        before = _token_of.cache_info()
        assert bearer_token_in(asgi_headers(b"Bearer " + token.encode())) == token
        after = _token_of.cache_info()
        assert (after.hits, after.misses) == (before.hits, before.misses)

    def test_only_what_parses_is_remembered(self) -> None:
        _token_of.cache_clear()
        with pytest.raises(InvalidRequestError):
            bearer_token_in(asgi_headers(b"Bearer a b"))
        assert _token_of.cache_info().currsize == 0
        bearer_token_in(asgi_headers(f"Bearer {TOKEN}".encode()))
        assert _token_of.cache_info().currsize == 1


class TestChallenge:
    def test_missing_token_has_no_error_attribute(self) -> None:
        answer = challenge(MissingTokenError(), realm="orders")
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="orders"'
        # No error code (RFC 6750 §3.1), but not an empty answer either.
        assert answer.body == {"error_description": "An access token is required"}

    def test_missing_token_without_realm(self) -> None:
        assert challenge(MissingTokenError()).headers["WWW-Authenticate"] == "Bearer"

    def test_invalid_token(self) -> None:
        answer = challenge(InvalidTokenError("The access token expired"), realm="orders")
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == (
            'Bearer realm="orders", error="invalid_token", '
            'error_description="The access token expired"'
        )
        assert answer.body == {
            "error": "invalid_token",
            "error_description": "The access token expired",
        }
        assert answer.headers["Cache-Control"] == "no-store"

    def test_insufficient_scope_names_the_scope(self) -> None:
        answer = challenge(
            MissingScopeError(["orders:read", "orders:write"], missing=["orders:write"])
        )
        assert answer.status_code == 403
        header = answer.headers["WWW-Authenticate"]
        assert header.startswith('Bearer error="insufficient_scope"')
        assert 'scope="orders:read orders:write"' in header
        assert "orders:write" in answer.body["error_description"]

    def test_invalid_request(self) -> None:
        answer = challenge(InvalidRequestError("bad header"), realm="api")
        assert answer.status_code == 400
        assert 'error="invalid_request"' in answer.headers["WWW-Authenticate"]

    def test_description_cannot_break_out_of_the_quoted_string(self) -> None:
        answer = challenge(InvalidTokenError('evil", error="none\\ \u00e9\n'))
        header = answer.headers["WWW-Authenticate"]
        assert header == 'Bearer error="invalid_token", error_description="evil, error=none "'

    def test_unavailable_is_503_without_a_bearer_challenge(self) -> None:
        error = TemporarilyUnavailableError("keys unavailable", headers={"Retry-After": "3"})
        answer = challenge(error)
        assert answer.status_code == 503
        assert "WWW-Authenticate" not in answer.headers
        assert answer.headers["Retry-After"] == "3"

    def test_private_detail_is_never_sent(self) -> None:
        answer = challenge(InvalidTokenError("expired", detail="kid rsa-1 secret detail"))
        assert "secret" not in str(answer)


def test_check_scopes() -> None:
    claims = validate_claims(
        claims_for(scope="orders:read"),
        issuer=claims_for()["iss"],
        audiences=frozenset({claims_for()["aud"]}),
        now=claims_for()["iat"],
        leeway=0,
    )
    check_scopes(claims, ["orders:read"])
    check_scopes(claims, [])
    with pytest.raises(MissingScopeError) as info:
        check_scopes(claims, ["orders:read", "orders:write"])
    assert info.value.scopes == ("orders:read", "orders:write")
    assert info.value.status_code == 403
