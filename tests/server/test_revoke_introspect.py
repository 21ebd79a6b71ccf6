"""RFC 7009 revocation and RFC 7662 introspection, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest

from keyturn.storage.records import TOKEN_KIND_ACCESS, TOKEN_KIND_REFRESH, TokenRecord
from tests.server.conftest import Harness

CC = "client_credentials"


def token_for(server: Harness, cid: str, secret: str | None, **extra: str) -> str:
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret, **extra}
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def introspect(server: Harness, cid: str, secret: str | None, token: str) -> dict[str, Any]:
    r = server.http.post(
        "/oauth/introspect", data={"token": token, "client_id": cid, "client_secret": secret}
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body: dict[str, Any] = r.json()
    return body


def test_introspection_of_a_live_token(server: Harness) -> None:
    cid, secret = server.create_client(scopes=["read", "write"])
    token = token_for(server, cid, secret, scope="read")
    body = introspect(server, cid, secret, token)
    assert body["active"] is True
    assert body["scope"] == "read"
    assert body["client_id"] == cid
    assert body["sub"] == cid
    assert body["token_type"] == "Bearer"
    assert body["exp"] > body["iat"]
    assert body["jti"]


def test_revoked_unknown_and_foreign_tokens_are_inactive(server: Harness) -> None:
    cid, secret = server.create_client()
    other, other_secret = server.create_client()
    token = token_for(server, cid, secret)
    # Another client without the introspection permission learns nothing about the
    # token, only that it may not ask (issue 17, item 13).
    foreign = introspect(server, other, other_secret, token)
    assert foreign.pop("not_permitted").startswith("this client may introspect only")
    assert foreign == {"active": False}
    assert introspect(server, cid, secret, "not-a-token") == {"active": False}
    r = server.http.post(
        "/oauth/revoke",
        data={
            "token": token,
            "token_type_hint": "refresh_token",
            "client_id": cid,
            "client_secret": secret,
        },
    )
    assert r.status_code == 200
    assert r.content == b""
    assert introspect(server, cid, secret, token) == {"active": False}


def test_resource_server_client_may_introspect_any_token(server: Harness) -> None:
    cid, secret = server.create_client()
    rs, rs_secret = server.create_client(can_introspect=True, grant_types=[])
    token = token_for(server, cid, secret)
    assert introspect(server, rs, rs_secret, token)["active"] is True


def _tampered(token: str, **claims: Any) -> list[str]:
    """Variants of a JWT that keep its jti: other claims, signature or header."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**body, **claims}).encode()).rstrip(b"=")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    return [
        f"{header}.{forged.decode()}.{signature}",
        f"{header}.{payload}.{flipped}",
        f"{header}.{payload}.",
        f"{header}.{payload}",
        f"{header}x.{payload}.{signature}",
        f"{header}.{payload}.{signature}.",
    ]


def test_a_tampered_jwt_with_a_real_jti_is_neither_active_nor_revocable(
    server: Harness,
) -> None:
    """Access tokens are found by their jti, then must match their keyed hash."""
    cid, secret = server.create_client(scopes=["read", "write"])
    token = token_for(server, cid, secret, scope="read")
    for fake in _tampered(token, scope="read write", exp=2**40):
        assert introspect(server, cid, secret, fake) == {"active": False}, fake
        r = server.http.post(
            "/oauth/revoke", data={"token": fake, "client_id": cid, "client_secret": secret}
        )
        assert r.status_code == 200
    assert introspect(server, cid, secret, token)["scope"] == "read"  # untouched


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b'{"jti": 5}', b'{"jti": ""}', b"\xff\xfe", b"[" * 30_000],
)
def test_jwt_shaped_garbage_is_inactive(server: Harness, payload: bytes) -> None:
    cid, secret = server.create_client()
    segment = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    for token in (f"e30.{segment}.c2ln", f"e30.{segment}!.c2ln"):
        assert introspect(server, cid, secret, token) == {"active": False}


def test_expired_token_is_inactive(server: Harness) -> None:
    cid, secret = server.create_client(access_token_lifetime=1)
    token = token_for(server, cid, secret)
    now = server.ctx.clock
    server.ctx.clock = lambda: now() + 5
    try:
        assert introspect(server, cid, secret, token) == {"active": False}
    finally:
        server.ctx.clock = now


def test_revocation_of_unknown_token_is_200(server: Harness) -> None:
    cid, secret = server.create_client()
    r = server.http.post(
        "/oauth/revoke", data={"token": "nope", "client_id": cid, "client_secret": secret}
    )
    assert r.status_code == 200


def test_revocation_needs_client_auth_and_a_token(server: Harness) -> None:
    cid, secret = server.create_client()
    token = token_for(server, cid, secret)
    r = server.http.post("/oauth/revoke", data={"token": token})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    r = server.http.post("/oauth/revoke", data={"client_id": cid, "client_secret": secret})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    r = server.http.post(
        "/oauth/introspect", data={"token": token, "client_id": cid, "client_secret": "wrong"}
    )
    assert r.status_code == 401
    assert introspect(server, cid, secret, token)["active"] is True, "nothing was revoked"


def test_another_clients_token_cannot_be_revoked(server: Harness) -> None:
    cid, secret = server.create_client()
    other, other_secret = server.create_client()
    token = token_for(server, cid, secret)
    r = server.http.post(
        "/oauth/revoke", data={"token": token, "client_id": other, "client_secret": other_secret}
    )
    assert r.status_code == 400
    assert r.json()["error"] == "unauthorized_client"
    assert introspect(server, cid, secret, token)["active"] is True


def test_square_client_header_on_revoke(server: Harness) -> None:
    cid, secret = server.create_client()
    token = token_for(server, cid, secret)
    r = server.http.post(
        "/oauth/revoke",
        data={"token": token, "client_id": cid},
        headers={"Authorization": f"Client {secret}"},
    )
    assert r.status_code == 200
    assert introspect(server, cid, secret, token) == {"active": False}


def test_revoking_a_refresh_token_revokes_its_family(server: Harness) -> None:
    cid, secret = server.create_client()
    now = int(server.ctx.clock())
    family = secrets.token_hex(8)
    refresh_value = "rt_" + secrets.token_urlsafe(32)

    def record(kind: str, value: str, token_id: str | None = None) -> TokenRecord:
        return TokenRecord(
            token_id=token_id or secrets.token_hex(8),
            token_hash=server.ctx.hasher.hash(value),
            kind=kind,
            client_id=cid,
            subject="alice",
            scope="read",
            audience=("x",),
            grant_type="x",
            issued_at=now,
            expires_at=now + 600,
            family_id=family,
        )

    # An access token is a JWT, found by its jti (signature unchecked by lookups).
    jti = secrets.token_hex(8)
    claims = base64.urlsafe_b64encode(json.dumps({"jti": jti}).encode()).rstrip(b"=")
    access_value = f"e30.{claims.decode()}.{secrets.token_urlsafe(32)}"
    server.call(
        server.ctx.storage.record_tokens,
        [record(TOKEN_KIND_REFRESH, refresh_value), record(TOKEN_KIND_ACCESS, access_value, jti)],
    )
    assert introspect(server, cid, secret, access_value)["active"] is True
    r = server.http.post(
        "/oauth/revoke", data={"token": refresh_value, "client_id": cid, "client_secret": secret}
    )
    assert r.status_code == 200
    assert introspect(server, cid, secret, access_value) == {"active": False}
    assert introspect(server, cid, secret, refresh_value) == {"active": False}


def test_metadata_names_revocation_and_introspection(server: Harness) -> None:
    meta = server.http.get("/.well-known/oauth-authorization-server").json()
    assert meta["revocation_endpoint"].endswith("/oauth/revoke")
    assert meta["introspection_endpoint"].endswith("/oauth/introspect")


@pytest.mark.parametrize("path", ["/oauth/revoke", "/oauth/introspect"])
def test_bad_bodies(server: Harness, path: str) -> None:
    r = server.http.post(path, content=b"token=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = server.http.post(path, content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


def _stored_token(server: Harness, cid: str, kind: str) -> str:
    """A token of ``kind`` recorded for ``cid`` directly (refresh tokens are opaque)."""
    now = int(server.ctx.clock())
    value = "rt_" + secrets.token_urlsafe(32)
    token_id = secrets.token_hex(8)
    if kind == TOKEN_KIND_ACCESS:  # access tokens are found by their jti
        claims = base64.urlsafe_b64encode(json.dumps({"jti": token_id}).encode()).rstrip(b"=")
        value = f"e30.{claims.decode()}.{secrets.token_urlsafe(32)}"
    rec = TokenRecord(
        token_id=token_id,
        token_hash=server.ctx.hasher.hash(value),
        kind=kind,
        client_id=cid,
        subject="alice",
        scope="read",
        audience=(),
        grant_type="authorization_code",
        issued_at=now,
        expires_at=now + 600,
        family_id=secrets.token_hex(8),
    )
    server.call(server.ctx.storage.record_tokens, [rec])
    return value


def test_metadata_advertises_exactly_what_any_client_may_rely_on(server: Harness) -> None:
    """Issue 17, item 10b: no "plain" PKCE (only clients registered for it may use it),
    "none" where public clients really authenticate that way."""
    meta = server.http.get("/.well-known/oauth-authorization-server").json()
    assert meta["code_challenge_methods_supported"] == ["S256"]
    for endpoint in ("token", "revocation", "introspection"):
        assert "none" in meta[f"{endpoint}_endpoint_auth_methods_supported"], endpoint
    # ... and "none" is true: a public client revokes its own token with its id alone.
    cid, _ = server.create_client(
        public=True, grant_types=["authorization_code"], redirect_uris=["https://app/cb"]
    )
    token = _stored_token(server, cid, TOKEN_KIND_ACCESS)
    assert introspect(server, cid, None, token)["active"] is True
    r = server.http.post("/oauth/revoke", data={"token": token, "client_id": cid})
    assert r.status_code == 200, r.text
    assert introspect(server, cid, None, token) == {"active": False}
    # A plain code challenge from an ordinary public client is refused.
    r = server.http.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": cid,
            "redirect_uri": "https://app/cb",
            "code_challenge": "x" * 43,
            "code_challenge_method": "plain",
        },
        follow_redirects=False,
    )
    assert r.status_code in (302, 400), r.text
    assert "plain" in (r.headers.get("location", "") + r.text)


def test_introspecting_a_refresh_token_names_no_token_type(server: Harness) -> None:
    """token_type is an access token's RFC 6749 §7.1 type; "refresh_token" is none."""
    cid, secret = server.create_client()
    body = introspect(server, cid, secret, _stored_token(server, cid, TOKEN_KIND_REFRESH))
    assert body["active"] is True
    assert "token_type" not in body
    access = introspect(server, cid, secret, _stored_token(server, cid, TOKEN_KIND_ACCESS))
    assert access["token_type"] == "Bearer"
