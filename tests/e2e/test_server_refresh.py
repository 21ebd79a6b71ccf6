"""Concurrent refresh against a real server process on SQLite and PostgreSQL.

Legitimate concurrency is not an attack: many requests presenting the same
refresh token at once must all get the same new pair, never a mix of 400s and
500s, and the grant must survive.
"""

from __future__ import annotations

import concurrent.futures
import secrets
import time
from typing import Any

import httpx2

from tests.e2e.conftest import LiveServer

GRANTS = ("--grant", "client_credentials", "--grant", "refresh_token", "--grant", "migration_token")


def admin_headers(server: LiveServer) -> dict[str, str]:
    admin = server.create_client("--scope", "keyturn:admin")
    r = httpx2.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        auth=(admin["client_id"], admin["client_secret"]),
    )
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def new_grant(
    server: LiveServer, headers: dict[str, str], client: dict[str, Any]
) -> dict[str, Any]:
    """A refresh token the way a migrating operator gets one: import, then exchange."""
    legacy = "legacy-" + secrets.token_hex(8)
    r = httpx2.post(
        server.url + "/admin/v1/tokens/import",
        headers=headers,
        json={
            "tokens": [
                {
                    "token": legacy,
                    "client_id": client["client_id"],
                    "subject": "alice",
                    "scopes": ["read"],
                    "expires_at": int(time.time()) + 600,
                }
            ]
        },
    )
    assert r.status_code == 201, r.text
    r = httpx2.post(
        server.token_url,
        data={"grant_type": "migration_token", "migration_token": legacy},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_parallel_refresh_of_one_token_gets_one_answer(live_server: LiveServer) -> None:
    client = live_server.create_client("--scope", "read", *GRANTS)
    pair = new_grant(live_server, admin_headers(live_server), client)
    auth = (client["client_id"], client["client_secret"])

    def refresh(_: int) -> httpx2.Response:
        return httpx2.post(
            live_server.token_url,
            data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
            auth=auth,
            timeout=30,
        )

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(refresh, range(20)))
    assert [r.status_code for r in answers] == [200] * 20, [r.text for r in answers]
    bodies = {r.text for r in answers}
    assert len(bodies) == 1, "every concurrent presenter gets the same new pair"
    rotated = answers[0].json()
    # The grant survived: the new refresh token works, once.
    r = httpx2.post(
        live_server.token_url,
        data={"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]},
        auth=auth,
    )
    assert r.status_code == 200, r.text


def test_many_grants_refreshing_at_once(live_server: LiveServer) -> None:
    client = live_server.create_client("--scope", "read", *GRANTS)
    headers = admin_headers(live_server)
    pairs = [new_grant(live_server, headers, client) for _ in range(8)]
    auth = (client["client_id"], client["client_secret"])

    def chain(pair: dict[str, Any]) -> int:
        token = pair["refresh_token"]
        for _ in range(5):
            r = httpx2.post(
                live_server.token_url,
                data={"grant_type": "refresh_token", "refresh_token": token},
                auth=auth,
                timeout=30,
            )
            assert r.status_code == 200, r.text
            token = r.json()["refresh_token"]
        return 5

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(chain, pairs)) == 40
