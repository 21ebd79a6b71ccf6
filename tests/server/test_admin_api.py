"""The admin API in process: every route, its authorisation and its errors."""

from __future__ import annotations

from typing import Any

import jwt as pyjwt
import pytest

from tests.server.conftest import Harness

CC = "client_credentials"
ADMIN = "keyturn:admin"

ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/admin/v1/tokens", None),
    ("POST", "/admin/v1/tokens", {"client_id": "x"}),
    ("GET", "/admin/v1/tokens/some-id", None),
    ("PATCH", "/admin/v1/tokens/some-id", {"scopes": ["read"]}),
    ("DELETE", "/admin/v1/tokens/some-id", None),
    ("POST", "/admin/v1/tokens/revoke", {"token_id": "x"}),
    ("POST", "/admin/v1/tokens/revoke-all", {"client_id": "x"}),
    ("POST", "/admin/v1/tokens/purge", None),
    ("POST", "/admin/v1/tokens/reissue-id-token", {"refresh_token": "x"}),
    ("POST", "/admin/v1/tokens/import", {"tokens": []}),
    ("POST", "/admin/v1/tokens/some-id/renew", None),
    ("GET", "/admin/v1/clients", None),
    ("POST", "/admin/v1/clients", {"name": "x"}),
    ("GET", "/admin/v1/clients/x", None),
    ("PATCH", "/admin/v1/clients/x", {"name": "y"}),
    ("DELETE", "/admin/v1/clients/x", None),
    ("POST", "/admin/v1/clients/x/rotate-secret", None),
    ("DELETE", "/admin/v1/clients/x/previous-secret", None),
]


def get_token(server: Harness, cid: str, secret: str | None, scope: str | None = None) -> str:
    data = {"grant_type": CC, "client_id": cid, "client_secret": secret}
    if scope:
        data["scope"] = scope
    r = server.http.post("/oauth/token", data=data)
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


@pytest.fixture
def admin(server: Harness) -> dict[str, str]:
    cid, secret = server.create_client(scopes=[ADMIN])
    return {"Authorization": "Bearer " + get_token(server, cid, secret)}


def call(
    server: Harness, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Any:
    return server.http.request(method, path, json=body, headers=headers or {})


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_needs_an_admin_token(
    server: Harness, method: str, path: str, body: dict[str, Any] | None
) -> None:
    r = call(server, method, path, body)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer realm="keyturn-admin"')
    assert r.json()["error"] == "invalid_token"

    r = call(server, method, path, body, {"Authorization": "Basic abc"})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"

    r = call(server, method, path, body, {"Authorization": "Bearer forged.jwt.value"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]

    cid, secret = server.create_client(scopes=["read"])
    plain = get_token(server, cid, secret)
    r = call(server, method, path, body, {"Authorization": "Bearer " + plain})
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_scope"
    assert f'scope="{ADMIN}"' in r.headers["www-authenticate"]


def test_revoked_admin_token_stops_working(server: Harness, admin: dict[str, str]) -> None:
    assert call(server, "GET", "/admin/v1/clients", headers=admin).status_code == 200
    token = admin["Authorization"].split()[1]
    jti = pyjwt.decode(token, options={"verify_signature": False})["jti"]
    r = call(server, "POST", "/admin/v1/tokens/revoke", {"token_id": jti}, admin)
    assert r.status_code == 200
    assert r.json()["token_ids"] == [jti]
    assert call(server, "GET", "/admin/v1/clients", headers=admin).status_code == 401


def test_list_filter_and_paginate(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client()
    issued = [get_token(server, cid, secret) for _ in range(5)]
    jtis = [pyjwt.decode(t, options={"verify_signature": False})["jti"] for t in issued]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"client_id": cid, "limit": 2, **({"cursor": cursor} if cursor else {})}
        r = server.http.get("/admin/v1/tokens", params=params, headers=admin)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [t["token_id"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(jtis)
    assert len(set(seen)) == 5
    item = page["items"][0]
    assert item["client_id"] == cid
    assert item["active"] is True
    assert "token_hash" not in item
    r = server.http.get("/admin/v1/tokens", params={"cursor": "garbage!"}, headers=admin)
    assert r.status_code == 400
    r = server.http.get("/admin/v1/tokens", params={"limit": 0}, headers=admin)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


def test_create_get_update_delete_token(server: Harness, admin: dict[str, str]) -> None:
    cid, _ = server.create_client(scopes=["read", "write"])
    r = call(
        server,
        "POST",
        "/admin/v1/tokens",
        {"client_id": cid, "subject": "alice", "scopes": ["read"], "lifetime": 600},
        admin,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    claims = pyjwt.decode(created["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "alice"
    assert claims["scope"] == "read"
    assert created["expires_in"] == 600
    token_id = created["token"]["token_id"]
    assert (
        call(server, "GET", f"/admin/v1/tokens/{token_id}", headers=admin).json()["subject"]
        == "alice"
    )
    r = call(server, "PATCH", f"/admin/v1/tokens/{token_id}", {"scopes": ["write"]}, admin)
    assert r.json()["scopes"] == ["write"]
    r = call(server, "PATCH", f"/admin/v1/tokens/{token_id}", {"scopes": ["admin"]}, admin)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"
    assert call(server, "DELETE", f"/admin/v1/tokens/{token_id}", headers=admin).status_code == 204
    assert call(server, "GET", f"/admin/v1/tokens/{token_id}", headers=admin).status_code == 404
    assert call(server, "DELETE", f"/admin/v1/tokens/{token_id}", headers=admin).status_code == 404
    r = call(server, "POST", "/admin/v1/tokens", {"client_id": "nobody"}, admin)
    assert r.status_code == 404
    r = call(server, "POST", "/admin/v1/tokens", {"client_id": cid, "surprise": 1}, admin)
    assert r.status_code == 400


def test_revoke_by_value_and_revoke_all(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client()
    first = get_token(server, cid, secret)
    r = call(server, "POST", "/admin/v1/tokens/revoke", {"token": first}, admin)
    assert r.json()["revoked"] == 1
    r = call(server, "POST", "/admin/v1/tokens/revoke", {"token": first, "token_id": "x"}, admin)
    assert r.status_code == 400
    others = [get_token(server, cid, secret) for _ in range(3)]
    r = call(
        server,
        "POST",
        "/admin/v1/tokens/revoke-all",
        {"client_id": cid, "access_tokens_only": True},
        admin,
    )
    assert r.json()["revoked"] == 3
    for token in others:
        body = server.http.post(
            "/oauth/introspect", data={"token": token, "client_id": cid, "client_secret": secret}
        ).json()
        assert body == {"active": False}
    r = call(server, "POST", "/admin/v1/tokens/revoke-all", {}, admin)
    assert r.status_code == 400


def test_renew_only_inside_the_window(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client(access_token_lifetime=7200)
    token = get_token(server, cid, secret)
    jti = pyjwt.decode(token, options={"verify_signature": False})["jti"]
    r = call(server, "POST", f"/admin/v1/tokens/{jti}/renew", headers=admin)
    assert r.status_code == 400
    assert "renewed in its last 3600 s" in r.json()["error_description"]
    real_clock = server.ctx.clock
    server.ctx.clock = lambda: real_clock() + 4000
    try:
        # The admin token (5 h) is still valid 4000 s later.
        r = call(server, "POST", f"/admin/v1/tokens/{jti}/renew", headers=admin)
    finally:
        server.ctx.clock = real_clock
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["access_token"] != token
    assert new["token"]["client_id"] == cid
    assert new["expires_in"] == 7200


def test_client_management(server: Harness, admin: dict[str, str]) -> None:
    r = call(
        server,
        "POST",
        "/admin/v1/clients",
        {"name": "svc", "scopes": ["read"], "client_id": "svc-1"},
        admin,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["client_secret"]
    assert secret.startswith("kts_")
    assert (
        call(server, "POST", "/admin/v1/clients", {"client_id": "svc-1"}, admin).status_code == 409
    )
    assert get_token(server, "svc-1", secret)
    r = call(
        server,
        "PATCH",
        "/admin/v1/clients/svc-1",
        {"scopes": ["read", "write"], "rate_limit": 5},
        admin,
    )
    assert r.json()["scopes"] == ["read", "write"]
    assert r.json()["rate_limit"] == 5
    r = call(server, "PATCH", "/admin/v1/clients/svc-1", {"grant_types": ["magic"]}, admin)
    assert r.status_code == 400
    r = call(server, "POST", "/admin/v1/clients/svc-1/rotate-secret", headers=admin)
    new_secret = r.json()["client_secret"]
    assert new_secret != secret
    # The default overlap: both secrets work until the old one is expired.
    assert get_token(server, "svc-1", secret)
    assert get_token(server, "svc-1", new_secret)
    r = call(server, "DELETE", "/admin/v1/clients/svc-1/previous-secret", headers=admin)
    assert r.status_code == 200, r.text
    assert [s["label"] for s in r.json()["secrets"]] == ["current"]
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": "svc-1", "client_secret": secret}
    )
    assert r.status_code == 401
    assert get_token(server, "svc-1", new_secret)
    listed = call(server, "GET", "/admin/v1/clients", headers=admin)
    assert "svc-1" in [c["client_id"] for c in listed.json()]
    # Secrets are listed by label and dates, never by value or hash.
    assert all(
        set(s) == {"label", "created_at", "expires_at"} for c in listed.json() for s in c["secrets"]
    )
    stored = server.call(server.ctx.storage.get_client, "svc-1")
    assert new_secret not in listed.text
    assert stored.secret_hash not in listed.text
    assert call(server, "DELETE", "/admin/v1/clients/svc-1", headers=admin).status_code == 204
    assert call(server, "GET", "/admin/v1/clients/svc-1", headers=admin).status_code == 404


def test_purge_deletes_only_old_dead_rows(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client(access_token_lifetime=1)
    dead = get_token(server, cid, secret)
    live_cid, live_secret = server.create_client()
    live = get_token(server, live_cid, live_secret)
    real_clock = server.ctx.clock
    retention = server.ctx.settings.purge_retention
    server.ctx.clock = lambda: real_clock() + retention + 10
    try:
        from keyturn.server import token_service

        purged = server.call(token_service.purge, server.ctx)
    finally:
        server.ctx.clock = real_clock
    assert purged.rows >= 1
    assert purged.complete
    jti = pyjwt.decode(dead, options={"verify_signature": False})["jti"]
    assert server.call(server.ctx.storage.get_token, jti) is None
    live_jti = pyjwt.decode(live, options={"verify_signature": False})["jti"]
    assert server.call(server.ctx.storage.get_token, live_jti) is not None


def test_openapi_document_is_served(server: Harness) -> None:
    doc = server.http.get("/admin/v1/openapi.json").json()
    assert doc["info"]["title"] == "Keyturn admin API"
    assert "/tokens/revoke-all" in doc["paths"]


def test_nul_and_repeated_parameters_are_rejected(server: Harness, admin: dict[str, str]) -> None:
    r = call(server, "POST", "/admin/v1/tokens/revoke-all", {"subject": "a\u0000b"}, admin)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    r = server.http.get("/admin/v1/tokens/ab%00cd", headers=admin)
    assert r.status_code == 400
    r = server.http.get("/admin/v1/tokens?client_id=a&client_id=b", headers=admin)
    assert r.status_code == 400
    assert "more than once" in r.json()["error_description"]
