"""One client service behind the admin API and the CLI: same effects by either path."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt as pyjwt
import pytest
import redis

from keyturn.core.errors import InvalidRequestError
from keyturn.server import client_service, token_service
from tests.conftest import REDIS_PREFIX, REDIS_URL
from tests.server.conftest import Harness, make_settings, run_harness

CC = "client_credentials"


@pytest.fixture
def server(tmp_path: Path, database_url: str, redis_client: redis.Redis) -> Iterator[Harness]:
    """The in-process server with the Redis deny-list a fleet's guards read."""
    yield from run_harness(make_settings(tmp_path, database_url, redis_url=REDIS_URL))


def token_for(server: Harness, cid: str, secret: str | None, scope: str = "read") -> str:
    data = {"grant_type": CC, "client_id": cid, "client_secret": secret, "scope": scope}
    r = server.http.post("/oauth/token", data=data)
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def on_denylist(client: redis.Redis, jti: str, seconds: float = 10.0) -> bool:
    """Published now by the revocation, or soon by a reconciler: either way within bound."""
    key = f"{REDIS_PREFIX}revoked:{jti}"
    deadline = time.monotonic() + seconds
    while not client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(client.exists(key))


def delete_by_admin_api(server: Harness, cid: str) -> None:
    admin_id, admin_secret = server.create_client(scopes=["keyturn:admin"])
    headers = {
        "Authorization": "Bearer " + token_for(server, admin_id, admin_secret, "keyturn:admin")
    }
    r = server.http.delete(f"/admin/v1/clients/{cid}", headers=headers)
    assert r.status_code == 204, r.text


def delete_by_service(server: Harness, cid: str) -> None:
    """What `keyturn clients delete` runs."""
    server.call(client_service.delete, server.ctx, cid)


@pytest.mark.parametrize("delete", [delete_by_admin_api, delete_by_service])
def test_delete_revokes_live_tokens_then_refuses_the_client(
    server: Harness, redis_client: redis.Redis, delete: Callable[[Harness, str], None]
) -> None:
    cid, secret = server.create_client(scopes=["read"])
    reader, reader_secret = server.create_client(can_introspect=True)
    tokens = [token_for(server, cid, secret) for _ in range(2)]
    jtis = [pyjwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens]
    try:
        delete(server, cid)
        assert all(on_denylist(redis_client, jti) for jti in jtis)
    finally:
        redis_client.delete(*(f"{REDIS_PREFIX}revoked:{jti}" for jti in jtis))
    for token in tokens:
        r = server.http.post(
            "/oauth/introspect",
            data={"token": token, "client_id": reader, "client_secret": reader_secret},
        )
        assert r.json() == {"active": False}
    r = server.http.post(
        "/oauth/token", data={"grant_type": CC, "client_id": cid, "client_secret": secret}
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    with pytest.raises(token_service.NotFoundError):
        server.call(client_service.delete, server.ctx, cid)


def test_create_update_rotate_errors_are_oauth_errors(server: Harness) -> None:
    new = server.call(client_service.create, server.ctx)
    assert new.secret
    with pytest.raises(InvalidRequestError) as exists:
        server.call(lambda: client_service.create(server.ctx, client_id=new.client.client_id))
    assert exists.value.status_code == 409
    with pytest.raises(InvalidRequestError, match="unknown grant type"):
        server.call(lambda: client_service.create(server.ctx, grant_types=["magic"]))
    with pytest.raises(InvalidRequestError, match="positive"):
        server.call(
            lambda: client_service.update(
                server.ctx, new.client.client_id, access_token_lifetime=-1
            )
        )
    public = server.call(
        lambda: client_service.create(
            server.ctx, public=True, grant_types=["authorization_code"],
            redirect_uris=["https://app.example/cb"],
        )
    )  # fmt: skip
    with pytest.raises(InvalidRequestError, match="no secret to rotate"):
        server.call(client_service.rotate_secret, server.ctx, public.client.client_id)
    rotated = server.call(client_service.rotate_secret, server.ctx, new.client.client_id)
    assert rotated.secret != new.secret
    assert server.ctx.hasher.verify(rotated.secret, rotated.client.secret_hash)
