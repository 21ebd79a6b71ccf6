"""Property: no body, header or query makes an OAuth endpoint answer 5xx.

Random parameters (known names and junk, any Unicode including NUL, as form or
JSON or garbage bytes) go to the token, revocation, introspection,
authorization and login endpoints, on SQLite and PostgreSQL (which refuses some
strings SQLite accepts). Every answer must be a 2xx/3xx or an RFC-style 4xx.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

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


# -- hostile values (issue 13, finding 6): deep nesting, lone surrogates, NUL, huge
# numbers, wrong types, sizes near the limits, odd content types --------------------------
def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


HOSTILE_JSON = st.sampled_from(
    [
        '"\\ud800"',
        '"x\\udfff"',
        '"\\ud83d\\ude00"',
        '"a\\u0000b"',
        '"\\u0000"',
        "1" + "0" * 400,
        "-" + "9" * 40,
        "1e400",
        "true",
        "false",
        "null",
        "[]",
        "{}",
        '["\\ud800"]',
        '{"a": "\\ud800"}',
        '["a", 1, null]',
        nested(50),
        nested(5000),
        '"' + "x" * 60_000 + '"',
    ]
) | st.builds(json.dumps, st.text(max_size=30))
HOSTILE_FORM = st.sampled_from(
    ["%ED%A0%80", "%00", "a%00b", "%FF", "%", "%zz", "+", "x" * 60_000, "%C0%80", "=="]
) | st.text(max_size=30).map(lambda t: quote(t, safe=""))
ODD_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-16",
        "APPLICATION/JSON",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded;;charset",
        "multipart/form-data; boundary=x",
        "text/json",
        "application/merge-patch+json",
        "",
    ]
)
HOSTILE_FIELDS = st.dictionaries(NAMES, HOSTILE_JSON, max_size=6)
FAST = settings(FUZZ, max_examples=40)


def json_text(fields: dict[str, str], *, wrap: bool = True) -> str:
    body = ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items())
    return "{" + body + "}" if wrap else body


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@FAST
@given(fields=HOSTILE_FIELDS, kind=ODD_TYPES)
def test_hostile_json_never_fails(
    server: Harness, path: str, fields: dict[str, str], kind: str
) -> None:
    headers = {"Content-Type": kind} if kind else {}
    check(server.http.post(path, content=json_text(fields).encode(), headers=headers))


@pytest.mark.parametrize(
    "path",
    ["/oauth/token", "/oauth/revoke", "/oauth/introspect", "/oauth/login", "/oauth/authorize"],
)
@FAST
@given(pairs=st.lists(st.tuples(NAMES.map(quote), HOSTILE_FORM), max_size=6), kind=ODD_TYPES)
def test_hostile_forms_never_fail(
    server: Harness, path: str, pairs: list[tuple[str, str]], kind: str
) -> None:
    body = "&".join(f"{k}={v}" for k, v in pairs).encode()
    headers = {"Content-Type": kind} if kind else {}
    check(server.http.post(path, content=body, headers=headers, follow_redirects=False))


@FAST
@given(pairs=st.lists(st.tuples(NAMES.map(quote), HOSTILE_FORM), max_size=6))
def test_hostile_authorization_queries_never_fail(
    server: Harness, pairs: list[tuple[str, str]]
) -> None:
    query = "&".join(f"{k}={v}" for k, v in pairs if len(v) < 4000)
    check(server.http.get("/oauth/authorize?" + query, follow_redirects=False))


# -- the admin API, with a valid admin token ---------------------------------------------
@pytest.fixture
def admin_headers(server: Harness) -> dict[str, str]:
    cid, secret = server.create_client(scopes=["keyturn:admin", "read"])
    r = server.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
    )
    return {"Authorization": "Bearer " + r.json()["access_token"]}


ADMIN_FIELDS = st.sampled_from(
    [
        "client_id",
        "subject",
        "scopes",
        "audience",
        "audiences",
        "lifetime",
        "grant_type",
        "grant_types",
        "token",
        "token_id",
        "token_sha256",
        "expires_at",
        "access_tokens_only",
        "name",
        "is_public",
        "redirect_uris",
        "token_endpoint_auth_methods",
        "access_token_lifetime",
        "rate_limit",
        "can_introspect",
        "refresh_token",
        "tokens",
        "overlap",
    ]
) | st.text(max_size=8)
ADMIN_VALUES = HOSTILE_JSON | st.sampled_from(
    [
        '["read"]',
        '["' + "s" * 200 + '"]',
        json.dumps([f"s{i}" for i in range(150)]),
        '[{"client_id": "c", "token": "t", "expires_at": 1e400}]',
        '[{"client_id": "\\ud800", "token": "t", "expires_at": 5}]',
        '"client_credentials"',
        "9223372036854775808",
        "0",
    ]
)
ADMIN_WRITES = st.sampled_from(
    [
        ("POST", "/admin/v1/tokens"),
        ("POST", "/admin/v1/tokens/revoke"),
        ("POST", "/admin/v1/tokens/revoke-all"),
        ("POST", "/admin/v1/tokens/import"),
        ("POST", "/admin/v1/tokens/reissue-id-token"),
        ("PATCH", "/admin/v1/tokens/nonexistent"),
        ("POST", "/admin/v1/clients"),
        ("PATCH", "/admin/v1/clients/nonexistent"),
        ("POST", "/admin/v1/clients/nonexistent/rotate-secret"),
    ]
)


@FUZZ
@given(
    route=ADMIN_WRITES,
    fields=st.dictionaries(ADMIN_FIELDS, ADMIN_VALUES, max_size=5),
    kind=ODD_TYPES,
    wrap=st.booleans(),
)
def test_admin_writes_never_fail(
    server: Harness,
    admin_headers: dict[str, str],
    route: tuple[str, str],
    fields: dict[str, str],
    kind: str,
    wrap: bool,
) -> None:
    method, path = route
    headers = {**admin_headers, "Content-Type": kind} if kind else admin_headers
    body = json_text(fields, wrap=wrap).encode()
    check(server.http.request(method, path, content=body, headers=headers))


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


SHORT_JSON = HOSTILE_JSON.filter(lambda text: len(text) < 2000)  # URLs stay under 64 KiB


@FUZZ
@given(
    issued_at=SHORT_JSON,
    token_id=SHORT_JSON,
    extra=st.dictionaries(
        st.sampled_from(["client_id", "subject", "active", "limit", "cursor"]),
        HOSTILE_FORM,
        max_size=3,
    ),
    raw=st.booleans(),
)
def test_admin_listing_never_fails(
    server: Harness,
    admin_headers: dict[str, str],
    issued_at: str,
    token_id: str,
    extra: dict[str, str],
    raw: bool,
) -> None:
    cursor = f"[{issued_at}, {token_id}]" if raw else f"{issued_at}"
    query = "&".join(f"{k}={v}" for k, v in extra.items() if len(v) < 4000)
    url = f"/admin/v1/tokens?cursor={cursor_of(cursor)}"
    check(server.http.get(url + ("&" + query if query else ""), headers=admin_headers))
    check(server.http.get("/admin/v1/tokens?" + query, headers=admin_headers))
