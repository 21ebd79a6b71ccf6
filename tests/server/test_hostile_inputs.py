"""Inputs that once reached a 500 (issue 13, finding 6): each now gets an RFC-style 400.

Deep JSON nesting, a lone UTF-16 surrogate (``"\\ud800"`` as a JSON escape,
which Python decodes to a string no encoder can write) and tampered admin
pagination cursors, on SQLite and on PostgreSQL (which also refuses NUL).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.server.conftest import Harness
from tests.server.test_admin_api import ADMIN, get_token

SURROGATE = '"\\ud800"'  # a JSON document's text: the escape, not the character


def raw_json(server: Harness, path: str, text: str, **headers: str) -> Any:
    return server.http.post(
        path, content=text.encode(), headers={"Content-Type": "application/json", **headers}
    )


def assert_invalid_request(response: Any) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_deeply_nested_json_is_a_400(server: Harness, path: str) -> None:
    depth = 20_000  # within the 64 KiB body limit
    body = '{"grant_type": ' + "[" * depth + "]" * depth + "}"
    assert_invalid_request(raw_json(server, path, body))
    assert_invalid_request(raw_json(server, path, "[" * 1000 + "]" * 1000))


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_lone_surrogate_in_client_credentials_is_a_400(server: Harness, field: str) -> None:
    cid, secret = server.create_client()
    params = {"grant_type": json.dumps("client_credentials"), "client_id": json.dumps(cid)}
    params["client_secret"] = json.dumps(secret)
    params[field] = SURROGATE
    text = "{" + ", ".join(f'"{k}": {v}' for k, v in params.items()) + "}"
    assert_invalid_request(raw_json(server, "/oauth/token", text))


@pytest.mark.parametrize("path", ["/oauth/introspect", "/oauth/revoke"])
def test_lone_surrogate_in_presented_token_is_a_400(server: Harness, path: str) -> None:
    cid, secret = server.create_client()
    text = f'{{"client_id": "{cid}", "client_secret": "{secret}", "token": "ab{SURROGATE[1:-1]}"}}'
    assert_invalid_request(raw_json(server, path, text))


def test_surrogate_pair_is_still_an_ordinary_character(server: Harness) -> None:
    """A valid pair (U+1F600 written as two escapes) is text like any other: 401, not 400."""
    text = (
        '{"grant_type": "client_credentials", "client_id": "x\\ud83d\\ude00", "client_secret": "s"}'
    )
    r = raw_json(server, "/oauth/token", text)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "document",
    [
        '[true, "t"]',
        '[false, "t"]',
        '[1000000000000000000000000000000, "t"]',
        '[-9223372036854775809, "t"]',
        '[1700000000, "\\ud800"]',
        '[1700000000, "a\\u0000b"]',
        '[1700000000, "' + "x" * 300 + '"]',
        '[1700000000.5, "t"]',
        '[1700000000, "t", 3]',
        '{"a": 1}',
        "[" * 300 + "]" * 300,
    ],
)
def test_tampered_cursor_is_a_400(server: Harness, document: str) -> None:
    cid, secret = server.create_client(scopes=[ADMIN])
    headers = {"Authorization": "Bearer " + get_token(server, cid, secret)}
    r = server.http.get("/admin/v1/tokens", params={"cursor": cursor(document)}, headers=headers)
    assert_invalid_request(r)


def test_a_cursor_handed_out_still_pages(server: Harness) -> None:
    cid, secret = server.create_client(scopes=[ADMIN])
    headers = {"Authorization": "Bearer " + get_token(server, cid, secret)}
    for _ in range(2):
        get_token(server, cid, secret)
    first = server.http.get("/admin/v1/tokens", params={"limit": 1}, headers=headers).json()
    assert first["next_cursor"]
    r = server.http.get(
        "/admin/v1/tokens", params={"limit": 1, "cursor": first["next_cursor"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["token_id"] != first["items"][0]["token_id"]
