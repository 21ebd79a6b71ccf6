"""Request builders and the field-by-field token-response check."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl

import pytest

from keyturn.core.credentials import (
    AuthorizationCodeCredentials,
    ClientAuthMethod,
    ClientCredentials,
    PasswordCredentials,
)
from keyturn.core.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidResponseError,
    OAuthError,
    RateLimitedError,
    ServerError,
)
from keyturn.core.grants import (
    DEFAULT_LIFETIME,
    authorization_code_request,
    estimate_clock_skew,
    grant_request,
    process_token_response,
    refresh_request,
    revocation_request,
)
from keyturn.core.http import HttpResponse

URL = "https://auth.example/oauth/token"
NOW = 1_700_000_000.0


def creds(**kw: Any) -> ClientCredentials:
    return ClientCredentials(client_id="c 1", client_secret="p@ss:word", token_url=URL, **kw)


def form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode()))


def resp(status: int, body: Any, ctype: str = "application/json", **headers: str) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, {"Content-Type": ctype, **headers}, raw)


def test_client_credentials_basic_auth_is_form_urlencoded_then_base64() -> None:
    req = grant_request(creds(scopes=("read", "write"), audience="api"), URL)
    assert req.method == "POST"
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    raw = base64.b64decode(req.headers["Authorization"].removeprefix("Basic ")).decode()
    assert raw == "c%201:p%40ss%3Aword"
    assert form(req.body) == {
        "grant_type": "client_credentials",
        "scope": "read write",
        "audience": "api",
    }


def test_client_secret_post_and_json_body() -> None:
    post = grant_request(creds(auth_method=ClientAuthMethod.POST), URL)
    assert "Authorization" not in post.headers
    assert form(post.body)["client_secret"] == "p@ss:word"
    as_json = grant_request(creds(auth_method="client_secret_json"), URL)
    assert as_json.headers["Content-Type"] == "application/json"
    assert json.loads(as_json.body) == {
        "grant_type": "client_credentials",
        "client_id": "c 1",
        "client_secret": "p@ss:word",
    }


def test_extra_params_cannot_override_grant_params() -> None:
    req = grant_request(creds(extra_params={"grant_type": "evil", "resource": "r"}), URL)
    assert form(req.body)["grant_type"] == "client_credentials"
    assert form(req.body)["resource"] == "r"


def test_password_and_refresh_and_code_requests() -> None:
    pw = PasswordCredentials(
        client_id="c", client_secret="s", token_url=URL, username="alice", password="pw"
    )
    assert form(grant_request(pw, URL).body)["username"] == "alice"
    refresh = form(refresh_request(pw, URL, "RT").body)
    assert refresh == {"grant_type": "refresh_token", "refresh_token": "RT"}
    ac = AuthorizationCodeCredentials(
        client_id="c", token_url=URL, redirect_uri="https://app.example/cb"
    )
    body = form(authorization_code_request(ac, URL, "CODE", "V" * 43).body)
    assert body == {
        "grant_type": "authorization_code",
        "redirect_uri": "https://app.example/cb",
        "code": "CODE",
        "code_verifier": "V" * 43,
        "client_id": "c",
    }
    with pytest.raises(ValueError, match="code_verifier"):
        authorization_code_request(ac, URL, "CODE", None)
    with pytest.raises(TypeError):
        grant_request(ac, URL)


def test_revocation_request_is_form_even_for_json_clients() -> None:
    req = revocation_request(creds(auth_method="client_secret_json"), URL, "T", "refresh_token")
    assert form(req.body) == {
        "token": "T",
        "token_type_hint": "refresh_token",
        "client_id": "c 1",
        "client_secret": "p@ss:word",
    }


def test_request_repr_hides_body_and_headers() -> None:
    assert "p@ss" not in repr(grant_request(creds(), URL))


def test_success_keeps_extra_fields_and_computes_expiry() -> None:
    token = process_token_response(
        resp(
            200,
            {
                "access_token": "AT",
                "token_type": "Bearer",
                "expires_in": 300,
                "refresh_token": "RT",
                "scope": "read",
                "tenant": "t1",
            },
        ),
        now=NOW,
    )
    assert token.expires_at == NOW + 300
    assert token.refresh_token == "RT"
    assert token.extra == {"tenant": "t1"}


def test_missing_expires_in_uses_documented_default() -> None:
    token = process_token_response(
        resp(200, {"access_token": "AT", "token_type": "bearer"}), now=NOW
    )
    assert token.expires_in is None
    assert token.expires_at == NOW + DEFAULT_LIFETIME
    custom = process_token_response(
        resp(200, {"access_token": "AT", "token_type": "bearer"}), now=NOW, default_lifetime=60
    )
    assert custom.expires_at == NOW + 60


def _jwt(claims: dict[str, Any]) -> str:
    def enc(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'ES256'})}.{enc(claims)}.sig"


def test_missing_expires_in_reads_jwt_exp_on_the_servers_clock() -> None:
    # The server's clock is 100 s ahead; exp is 600 s after the server's now.
    token = process_token_response(
        resp(200, {"access_token": _jwt({"exp": NOW + 700}), "token_type": "Bearer"}),
        now=NOW,
        clock_skew=100,
    )
    assert token.expires_at == NOW + 600


@pytest.mark.parametrize(
    "payload", [b"[" * 30_000, b"not json", b"\xff", b'{"exp": "soon"}', b'{"exp": true}']
)
def test_a_jwt_that_does_not_parse_gives_no_expiry_hint(payload: bytes) -> None:
    segment = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    body = {"access_token": f"e30.{segment}.sig", "token_type": "Bearer"}
    token = process_token_response(resp(200, body), now=NOW, default_lifetime=60)
    assert token.expires_at == NOW + 60


def test_expires_in_as_numeric_string_is_accepted() -> None:
    token = process_token_response(
        resp(200, {"access_token": "AT", "token_type": "Bearer", "expires_in": "60"}), now=NOW
    )
    assert token.expires_in == 60


def test_form_encoded_success_is_accepted() -> None:
    token = process_token_response(
        resp(
            200,
            b"access_token=AT&token_type=bearer&scope=repo",
            "application/x-www-form-urlencoded",
        ),
        now=NOW,
    )
    assert token.access_token == "AT"
    assert token.scope == "repo"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"token_type": "Bearer"}, "access_token"),
        ({"access_token": "", "token_type": "Bearer"}, "access_token"),
        ({"access_token": "AT"}, "token_type"),
        ({"access_token": "AT", "token_type": "Bearer", "expires_in": -1}, "expires_in"),
        ({"access_token": "AT", "token_type": "Bearer", "expires_in": True}, "expires_in"),
        ({"access_token": "AT", "token_type": "Bearer", "expires_in": "soon"}, "expires_in"),
        ({"access_token": "AT", "token_type": "Bearer", "refresh_token": 5}, "refresh_token"),
        ({"access_token": "AT", "token_type": "Bearer", "scope": ["a"]}, "scope"),
        ([1, 2], "JSON object"),
    ],
)
def test_malformed_success_is_invalid_response(body: Any, message: str) -> None:
    with pytest.raises(InvalidResponseError, match=message):
        process_token_response(resp(200, body), now=NOW)


def test_non_json_200_error_does_not_carry_the_body() -> None:
    with pytest.raises(InvalidResponseError) as info:
        process_token_response(resp(200, b"access_token: SECRET", "text/plain"), now=NOW)
    assert "SECRET" not in str(info.value)
    assert info.value.body == ""


def test_html_502_is_typed_with_status() -> None:
    with pytest.raises(InvalidResponseError) as info:
        process_token_response(resp(502, b"<html>Bad gateway</html>", "text/html"), now=NOW)
    assert info.value.status_code == 502
    assert "text/html" in str(info.value)


def test_provider_errors_are_typed() -> None:
    with pytest.raises(InvalidClientError) as client_err:
        process_token_response(
            resp(401, {"error": "invalid_client", "error_description": "bad secret"}), now=NOW
        )
    assert client_err.value.status_code == 401
    assert client_err.value.description == "bad secret"
    with pytest.raises(InvalidGrantError):
        process_token_response(resp(400, {"error": "invalid_grant"}), now=NOW)
    with pytest.raises(ServerError):
        process_token_response(resp(500, {"error": "server_error"}), now=NOW)
    with pytest.raises(OAuthError) as ext:
        process_token_response(resp(400, {"error": "custom_code", "error_uri": "u"}), now=NOW)
    assert ext.value.error == "custom_code"
    assert ext.value.uri == "u"


@pytest.mark.parametrize(
    "body", [{"error": "slow_down"}, {"error": "too_many"}, b"<html>slow down</html>"]
)
def test_429_is_rate_limited_with_retry_after(body: Any) -> None:
    ctype = "text/html" if isinstance(body, bytes) else "application/json"
    with pytest.raises(RateLimitedError) as info:
        process_token_response(resp(429, body, ctype, **{"Retry-After": "17"}), now=NOW)
    assert info.value.retry_after == 17


def test_error_keeps_no_cookies() -> None:
    with pytest.raises(InvalidClientError) as info:
        process_token_response(
            resp(401, {"error": "invalid_client"}, **{"Set-Cookie": "sid=SECRET"}), now=NOW
        )
    assert "set-cookie" not in {k.lower() for k in info.value.headers}


def test_clock_skew_from_date_header() -> None:
    response = resp(200, {}, Date="Tue, 14 Nov 2023 22:15:20 GMT")
    assert estimate_clock_skew(response, 1_700_000_000.0) == pytest.approx(120.0)
    assert estimate_clock_skew(resp(200, {}), NOW) is None
    assert estimate_clock_skew(resp(200, {}, Date="garbage"), NOW) is None
