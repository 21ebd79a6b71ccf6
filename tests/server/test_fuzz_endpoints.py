"""Property: no body, header or query makes an OAuth endpoint answer 5xx.

Random parameters (known names and junk, any Unicode including NUL, as form or
JSON or garbage bytes) go to the token, revocation, introspection,
authorization and login endpoints, on SQLite and PostgreSQL (which refuses some
strings SQLite accepts). Every answer must be a 2xx/3xx or an RFC-style 4xx.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.conftest import Harness

NAMES = st.sampled_from(
    [
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "audience",
        "resource",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "username",
        "password",
        "token",
        "token_type_hint",
        "migration_token",
        "response_type",
        "state",
        "nonce",
        "prompt",
        "code_challenge",
        "code_challenge_method",
        "csrf_token",
        "next",
        "decision",
    ]
) | st.text(max_size=12)
VALUES = st.text(max_size=40) | st.sampled_from(
    [
        "client_credentials",
        "authorization_code",
        "refresh_token",
        "password",
        "migration_token",
        "code",
        "S256",
        "plain",
        "none",
        "",
        "\x00",
    ]
)
PARAMS = st.dictionaries(NAMES, VALUES, max_size=8)
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
HEADERS = st.sampled_from(
    [
        {},
        {"Authorization": "Basic !!"},
        {"Authorization": "Basic Og=="},
        {"Authorization": "Client "},
        {"Authorization": "Bearer x y"},
        {"Authorization": "Digest a"},
    ]
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        assert isinstance(response.json().get("error"), str)


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@FUZZ
@given(params=PARAMS, headers=HEADERS, as_json=st.booleans())
def test_form_and_json_endpoints_never_fail(
    server: Harness, path: str, params: dict[str, str], headers: dict[str, str], as_json: bool
) -> None:
    if as_json:
        response = server.http.post(path, json=params, headers=headers)
    else:
        response = server.http.post(path, data=params, headers=headers)
    check(response)


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect"])
@FUZZ
@given(body=JSONISH)
def test_any_json_document_never_fails(server: Harness, path: str, body: Any) -> None:
    check(server.http.post(path, json=body))


@FUZZ
@given(
    body=st.binary(max_size=200),
    kind=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/json",
            "text/plain",
            "",
            "application/x-www-form-urlencoded; charset=latin-1",
        ]
    ),
)
def test_any_bytes_never_fail(server: Harness, body: bytes, kind: str) -> None:
    headers = {"Content-Type": kind} if kind else {}
    for path in ("/oauth/token", "/oauth/login", "/oauth/authorize"):
        check(server.http.post(path, content=body, headers=headers, follow_redirects=False))


@FUZZ
@given(params=PARAMS)
def test_authorization_endpoint_never_fails(server: Harness, params: dict[str, str]) -> None:
    check(server.http.get("/oauth/authorize", params=params, follow_redirects=False))
