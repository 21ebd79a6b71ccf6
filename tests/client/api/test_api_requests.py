"""The sans-IO halves of Keyturn API calls: what each one would send, with no transport."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from keyturn.client.api import LegacyToken, client_ops, oauth_ops, token_ops
from keyturn.client.api._admin import AdminSession
from keyturn.client.api._wire import Endpoints, RequestOptions, apply_options
from keyturn.core.clock import SystemClock
from keyturn.core.credentials import ClientCredentials
from keyturn.core.http import HttpRequest

EP = Endpoints("https://auth.example/", timeout=7.0)
CREDS = ClientCredentials(client_id="svc 1", client_secret="s3cret:value", token_url=EP.token_url)
AS_CLIENT = AdminSession(EP, SystemClock(), CREDS, None, None)


def body(request: HttpRequest) -> Any:
    return json.loads(request.body) if request.body else None


def form(request: HttpRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.body.decode()).items()}


def query(request: HttpRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def test_list_query_leaves_out_what_is_not_given() -> None:
    call = token_ops.list_pages(EP, client_id="a&b", active=False, limit=5)(None)
    assert call.admin is True
    assert call.request.method == "GET"
    assert call.request.url.startswith("https://auth.example/admin/v1/tokens?")
    assert query(call.request) == {"client_id": "a&b", "active": "false", "limit": "5"}
    assert call.request.timeout == 7.0
    assert call.request.body == b""
    bare = token_ops.list_pages(EP)(None)
    assert bare.request.url == "https://auth.example/admin/v1/tokens"


def test_identifiers_cannot_change_the_path() -> None:
    call = token_ops.get(EP, "../clients/x")
    assert call.request.url == "https://auth.example/admin/v1/tokens/..%2Fclients%2Fx"
    renew = token_ops.renew(EP, "a/b")
    assert renew.request.url == "https://auth.example/admin/v1/tokens/a%2Fb/renew"
    with pytest.raises(ValueError, match="empty"):
        client_ops.get(EP, "")


def test_json_bodies_carry_only_what_is_given() -> None:
    create = token_ops.create(EP, client_id="c", scopes="read write", lifetime=60)
    assert create.request.method == "POST"
    assert create.request.headers["Content-Type"] == "application/json"
    assert body(create.request) == {"client_id": "c", "scopes": ["read", "write"], "lifetime": 60}
    update = token_ops.update(EP, "t1", expires_at=123)
    assert (update.request.method, body(update.request)) == ("PATCH", {"expires_at": 123})
    patch = client_ops.update(EP, "c", scopes=("a",), rate_limit=0, can_introspect=False)
    assert body(patch.request) == {"scopes": ["a"], "rate_limit": 0, "can_introspect": False}
    new = client_ops.create(EP, name="n", grant_types=["client_credentials", "refresh_token"])
    assert body(new.request) == {
        "name": "n",
        "grant_types": ["client_credentials", "refresh_token"],
    }
    with pytest.raises(TypeError, match="list of strings"):
        client_ops.create(EP, grant_types="client_credentials")
    assert token_ops.purge(EP).request.body == b""


def test_revoke_and_import_are_checked_before_sending() -> None:
    assert body(token_ops.revoke(EP, token_id="j").request) == {"token_id": "j"}
    assert body(token_ops.revoke(EP, token="v").request) == {"token": "v"}
    for token, token_id in ((None, None), ("v", "j")):
        with pytest.raises(ValueError, match="exactly one"):
            token_ops.revoke(EP, token=token, token_id=token_id)
    with pytest.raises(ValueError, match="client_id="):
        token_ops.revoke_all(EP)
    call = token_ops.revoke_all(EP, subject="alice", access_tokens_only=True)
    assert body(call.request) == {"subject": "alice", "access_tokens_only": True}
    with pytest.raises(ValueError, match="at least one"):
        token_ops.import_(EP, [])
    legacy = LegacyToken(client_id="c", token="old-value", expires_at=9, scopes=("r",))
    assert "old-value" not in repr(legacy)
    assert body(token_ops.import_(EP, [legacy]).request) == {
        "tokens": [
            {
                "client_id": "c",
                "token": "old-value",
                "expires_at": 9,
                "scopes": ["r"],
                "audience": [],
            }
        ]
    }
    with pytest.raises(ValueError, match="not both"):
        LegacyToken(client_id="c", token="x", token_sha256="ab" * 32, expires_at=9)


def test_request_options_reach_every_part_of_the_request() -> None:
    options: RequestOptions = {
        "timeout_in_seconds": 1.5,
        "additional_headers": {"X-Trace": "t-1"},
        "additional_query_parameters": {"dry_run": "1"},
        "additional_body_parameters": {"note": "hi", "n": 2},
    }
    call = token_ops.create(EP, client_id="c", request_options=options)
    assert call.request.timeout == 1.5
    assert call.request.headers["X-Trace"] == "t-1"
    assert query(call.request) == {"dry_run": "1"}
    assert body(call.request) == {"client_id": "c", "note": "hi", "n": 2}
    listed = token_ops.list_pages(
        EP, limit=2, request_options={"additional_query_parameters": {"x": "y"}}
    )("c1")
    assert query(listed.request) == {"limit": "2", "cursor": "c1", "x": "y"}
    # A POST without a body gets a JSON one for the extra parameters.
    purge = token_ops.purge(EP, request_options={"additional_body_parameters": {"dry": True}})
    assert (purge.request.headers["Content-Type"], body(purge.request)) == (
        "application/json",
        {"dry": True},
    )
    with pytest.raises(ValueError, match="GET request has no body"):
        token_ops.get(EP, "t", request_options={"additional_body_parameters": {"x": 1}})
    unchanged = token_ops.get(EP, "t")
    assert apply_options(unchanged.request, {}) is unchanged.request


def test_get_token_is_the_core_client_credentials_request() -> None:
    options: RequestOptions = {"additional_body_parameters": {"resource": "https://api.example"}}
    call = oauth_ops.get_token(
        AdminSession(EP, SystemClock(), None, None, None),
        client_id="svc",
        client_secret="pw",
        scope=["read", "write"],
        audience="api",
        request_options=options,
    )
    request = call.request
    assert (request.method, request.url, call.admin) == ("POST", EP.token_url, False)
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"svc:pw").decode()
    assert form(request) == {
        "grant_type": "client_credentials",
        "scope": "read write",
        "audience": "api",
        "resource": "https://api.example",
    }


@pytest.mark.parametrize("build", [oauth_ops.revoke, oauth_ops.introspect])
def test_revoke_and_introspect_authenticate_three_ways(build: Any) -> None:
    basic = build(AS_CLIENT, "tok", token_type_hint="refresh_token").request
    assert basic.url in (EP.revocation_url, EP.introspection_url)
    pair = base64.b64decode(basic.headers["Authorization"].removeprefix("Basic ")).decode()
    assert pair == "svc%201:s3cret%3Avalue"  # RFC 6749 §2.3.1: encoded, then base64
    assert form(basic) == {"token": "tok", "token_type_hint": "refresh_token"}

    post = build(AS_CLIENT, "tok", client_auth="post").request
    assert "Authorization" not in post.headers
    assert form(post) == {"token": "tok", "client_id": "svc 1", "client_secret": "s3cret:value"}

    square = build(AS_CLIENT, "tok", client_auth="client").request
    assert square.headers["Authorization"] == "Client s3cret:value"
    assert form(square) == {"token": "tok", "client_id": "svc 1"}
    for request in (basic, post, square):
        assert "s3cret" not in repr(request)
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"

    with pytest.raises(ValueError, match="client_id"):
        build(AdminSession(EP, SystemClock(), None, None, None), "tok")
    with pytest.raises(ValueError, match="empty"):
        build(AS_CLIENT, "")


def test_endpoints_want_an_http_url() -> None:
    with pytest.raises(ValueError, match="http"):
        Endpoints("auth.example")
    assert Endpoints("http://127.0.0.1:8000///").admin_url("clients") == (
        "http://127.0.0.1:8000/admin/v1/clients"
    )
