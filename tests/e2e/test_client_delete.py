"""`keyturn clients delete` has the admin API's effects: live tokens revoked, then refused."""

from __future__ import annotations

import json
import subprocess
import time

import httpx2
import redis

from keyturn.core.jwt_claims import unverified_jti
from tests.conftest import REDIS_PREFIX, REDIS_URL
from tests.e2e.conftest import KEYTURN, LiveServer


def wait_for_key(client: redis.Redis, key: str, seconds: float = 10.0) -> bool:
    """Whether ``key`` shows up within ``seconds`` (published now or by a reconciler)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.exists(key):
            return True
        time.sleep(0.05)
    return bool(client.exists(key))


def test_cli_delete_revokes_live_tokens_and_refuses_the_client(
    live_server: LiveServer, redis_client: redis.Redis
) -> None:
    victim = live_server.create_client("--scope", "read")
    auth = (victim["client_id"], victim["client_secret"])
    reader = live_server.create_client("--can-introspect")
    reader_auth = (reader["client_id"], reader["client_secret"])
    got = httpx2.post(live_server.token_url, data={"grant_type": "client_credentials"}, auth=auth)
    assert got.status_code == 200, got.text
    token = got.json()["access_token"]
    jti = unverified_jti(token)
    assert jti
    key = f"{REDIS_PREFIX}revoked:{jti}"
    introspect = live_server.url + "/oauth/introspect"
    assert httpx2.post(introspect, data={"token": token}, auth=reader_auth).json()["active"]

    # The CLI process publishes to the same Redis a fleet's guards read.
    done = subprocess.run(
        [*KEYTURN, "clients", "delete", victim["client_id"], "--yes", "--json"],
        env={
            **live_server.env,
            "KEYTURN_REDIS_URL": REDIS_URL,
            "KEYTURN_REDIS_PREFIX": REDIS_PREFIX,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {
            "deleted": victim["client_id"],
            "revoked": 1,
            "token_ids": [jti],
        }
        assert wait_for_key(redis_client, key)
    finally:
        redis_client.delete(key)

    assert httpx2.post(introspect, data={"token": token}, auth=reader_auth).json() == {
        "active": False
    }
    again = httpx2.post(live_server.token_url, data={"grant_type": "client_credentials"}, auth=auth)
    assert again.status_code == 401, again.text
    assert again.json()["error"] == "invalid_client"
    missing = live_server.cli("clients", "delete", victim["client_id"], "--yes")
    assert missing.returncode == 1
    assert "no client" in missing.stderr
