"""Refresh-token rotation with reuse detection, and the migration grant, in process."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import pytest

from tests.server.conftest import Harness

GRANTS = ["client_credentials", "refresh_token", "migration_token"]


@pytest.fixture
def admin(server: Harness) -> dict[str, str]:
    cid, secret = server.create_client(scopes=["keyturn:admin"])
    r = server.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
    )
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def import_legacy(server: Harness, admin: dict[str, str], cid: str, **token: Any) -> str:
    item = {
        "client_id": cid,
        "subject": "alice",
        "scopes": ["read", "write"],
        "expires_at": int(time.time()) + 3600,
        **token,
    }
    r = server.http.post("/admin/v1/tokens/import", json={"tokens": [item]}, headers=admin)
    assert r.status_code == 201, r.text
    token_id: str = r.json()["token_ids"][0]
    return token_id


def token_request(server: Harness, cid: str, secret: str | None, **params: str) -> Any:
    return server.http.post(
        "/oauth/token", data={"client_id": cid, "client_secret": secret, **params}
    )


def introspect(server: Harness, cid: str, secret: str | None, token: str) -> dict[str, Any]:
    body: dict[str, Any] = server.http.post(
        "/oauth/introspect", data={"token": token, "client_id": cid, "client_secret": secret}
    ).json()
    return body


def migrate(server: Harness, admin: dict[str, str], cid: str, secret: str | None) -> dict[str, Any]:
    import_legacy(server, admin, cid, token="legacy-" + cid)
    r = token_request(
        server, cid, secret, grant_type="migration_token", migration_token="legacy-" + cid
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_migration_exchanges_a_legacy_token_once(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client(grant_types=GRANTS)
    # Unique per run: a legacy token is its value, and the database is shared.
    legacy = "old-opaque-" + secrets.token_hex(8)
    import_legacy(server, admin, cid, token=legacy)
    seen = introspect(server, cid, secret, legacy)
    assert seen["active"] is True, "imported tokens keep working until exchanged"
    assert seen["sub"] == "alice"
    r = token_request(server, cid, secret, grant_type="migration_token", migration_token=legacy)
    assert r.status_code == 200, r.text
    pair = r.json()
    assert pair["scope"] == "read write"
    assert pair["refresh_token"].startswith("ktr_")
    assert introspect(server, cid, secret, pair["access_token"])["sub"] == "alice"
    again = token_request(server, cid, secret, grant_type="migration_token", migration_token=legacy)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert introspect(server, cid, secret, legacy) == {"active": False}


def test_migration_by_sha256_and_errors(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client(grant_types=["migration_token"])
    other, other_secret = server.create_client(grant_types=["migration_token"])
    legacy = "hashed-legacy-" + secrets.token_hex(8)
    digest = hashlib.sha256(legacy.encode()).hexdigest()
    import_legacy(server, admin, cid, token_sha256=digest.upper())
    r = token_request(
        server, other, other_secret, grant_type="migration_token", migration_token=legacy
    )
    assert r.json()["error"] == "invalid_grant", "another client's legacy token"
    r = token_request(server, cid, secret, grant_type="migration_token", migration_token=legacy)
    assert r.status_code == 200
    assert "refresh_token" not in r.json(), "this client may not have refresh tokens"
    r = token_request(server, cid, secret, grant_type="migration_token")
    assert r.json()["error"] == "invalid_request"
    r = server.http.post(
        "/admin/v1/tokens/import",
        headers=admin,
        json={
            "tokens": [
                {"client_id": cid, "token_sha256": digest, "expires_at": int(time.time()) + 60}
            ]
        },
    )
    assert r.status_code == 409
    r = server.http.post(
        "/admin/v1/tokens/import",
        headers=admin,
        json={"tokens": [{"client_id": cid, "token": "x", "expires_at": 1}]},
    )
    assert r.status_code == 400


def test_refresh_rotates_and_narrows(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client(grant_types=GRANTS)
    pair = migrate(server, admin, cid, secret)
    r = token_request(
        server,
        cid,
        secret,
        grant_type="refresh_token",
        refresh_token=pair["refresh_token"],
        scope="read",
    )
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["scope"] == "read"
    assert new["refresh_token"] != pair["refresh_token"]
    assert introspect(server, cid, secret, new["access_token"])["scope"] == "read"
    # The refresh token keeps the original grant: the next refresh may ask for both.
    r = token_request(
        server,
        cid,
        secret,
        grant_type="refresh_token",
        refresh_token=new["refresh_token"],
        scope="read write",
    )
    assert r.status_code == 200
    r2 = token_request(
        server,
        cid,
        secret,
        grant_type="refresh_token",
        refresh_token=r.json()["refresh_token"],
        scope="read admin",
    )
    assert r2.status_code == 400
    assert r2.json()["error"] == "invalid_scope"


def test_replay_inside_grace_gets_the_same_pair(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client(grant_types=GRANTS)
    pair = migrate(server, admin, cid, secret)
    first = token_request(
        server, cid, secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
    )
    second = token_request(
        server, cid, secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
    )
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert introspect(server, cid, secret, first.json()["access_token"])["active"] is True


def test_no_grace_period_means_no_replay(server: Harness, admin: dict[str, str]) -> None:
    """KEYTURN_REFRESH_GRACE_PERIOD=0: a second presentation, even in the same second,
    is reuse (it was replayed, because ``now - revoked_at <= 0`` held)."""
    server.ctx.settings.refresh_grace_period = 0
    cid, secret = server.create_client(grant_types=GRANTS)
    pair = migrate(server, admin, cid, secret)
    first = token_request(
        server, cid, secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
    )
    again = token_request(
        server, cid, secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
    )
    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert introspect(server, cid, secret, first.json()["access_token"])["active"] is False


def test_reuse_after_grace_revokes_the_family(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client(grant_types=GRANTS)
    pair = migrate(server, admin, cid, secret)
    rotated = token_request(
        server, cid, secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
    ).json()
    real_clock = server.ctx.clock
    server.ctx.clock = lambda: real_clock() + server.ctx.settings.refresh_grace_period + 2
    try:
        reuse = token_request(
            server, cid, secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
        )
    finally:
        server.ctx.clock = real_clock
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    assert "revoked" in reuse.json()["error_description"]
    for token in (pair["access_token"], rotated["access_token"], rotated["refresh_token"]):
        assert introspect(server, cid, secret, token) == {"active": False}
    r = token_request(
        server, cid, secret, grant_type="refresh_token", refresh_token=rotated["refresh_token"]
    )
    assert r.json()["error"] == "invalid_grant"


def test_refresh_errors(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client(grant_types=GRANTS)
    other, other_secret = server.create_client(grant_types=GRANTS)
    pair = migrate(server, admin, cid, secret)
    r = token_request(
        server, other, other_secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
    )
    assert r.json()["error"] == "invalid_grant"
    r = token_request(server, cid, secret, grant_type="refresh_token", refresh_token="ktr_nope")
    assert r.json()["error"] == "invalid_grant"
    r = token_request(
        server, cid, secret, grant_type="refresh_token", refresh_token=pair["access_token"]
    )
    assert r.json()["error"] == "invalid_grant", "an access token is not a refresh token"
    r = token_request(server, cid, secret, grant_type="refresh_token")
    assert r.json()["error"] == "invalid_request"
    real_clock = server.ctx.clock
    server.ctx.clock = lambda: real_clock() + server.ctx.settings.refresh_token_lifetime + 1
    try:
        r = token_request(
            server, cid, secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
        )
    finally:
        server.ctx.clock = real_clock
    assert r.json()["error"] == "invalid_grant"
    assert "expired" in r.json()["error_description"]
    # The other client's failed attempt did not burn the token.
    r = token_request(
        server, cid, secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
    )
    assert r.status_code == 200


def test_refresh_grant_must_be_allowed(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client(grant_types=GRANTS)
    pair = migrate(server, admin, cid, secret)
    server.http.patch(
        f"/admin/v1/clients/{cid}", headers=admin, json={"grant_types": ["client_credentials"]}
    )
    r = token_request(
        server, cid, secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
    )
    assert r.status_code == 400
    assert r.json()["error"] == "unauthorized_client"


def test_revoking_the_refresh_token_ends_the_grant(server: Harness, admin: dict[str, str]) -> None:
    cid, secret = server.create_client(grant_types=GRANTS)
    pair = migrate(server, admin, cid, secret)
    r = server.http.post(
        "/oauth/revoke",
        data={"token": pair["refresh_token"], "client_id": cid, "client_secret": secret},
    )
    assert r.status_code == 200
    assert introspect(server, cid, secret, pair["access_token"]) == {"active": False}
    r = token_request(
        server, cid, secret, grant_type="refresh_token", refresh_token=pair["refresh_token"]
    )
    assert r.json()["error"] == "invalid_grant"
