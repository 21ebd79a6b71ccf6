"""Introspection stays exact across a fleet: a revocation through any process is
seen at once by every other (issue 18, target 1).

Two real ``keyturn serve`` processes share one database (PostgreSQL, and one
SQLite file, which two processes on one host can share). Each has introspected
every token before, so each has the tokens' signatures remembered
(`keyturn.server.verified_tokens`) and the client cached for five minutes; a
token revoked through one process (RFC 7009, or the CLI) must introspect as
inactive through the other on the very next request, with no wait and no
retry, while the others stay active.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.e2e
CC = "client_credentials"


@pytest.fixture(params=["sqlite", "postgres"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[LiveServer]]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue("postgres_database_url")
    cached = {"KEYTURN_CLIENT_CACHE_TTL": "300"}
    servers: list[LiveServer] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            servers.append(start_server(tmp_path / name, url, extra_env=cached))
        yield servers
    finally:
        for server in servers:
            stop_server(server)


def introspect(http: httpx2.Client, server: LiveServer, auth: tuple[str, str], token: str) -> Any:
    r = http.post(server.url + "/oauth/introspect", data={"token": token}, auth=auth)
    assert r.status_code == 200, r.text
    return r.json()


def revoke(http: httpx2.Client, server: LiveServer, auth: tuple[str, str], token: str) -> None:
    r = http.post(server.url + "/oauth/revoke", data={"token": token}, auth=auth)
    assert r.status_code == 200, r.text


def test_a_revocation_through_one_process_is_seen_at_once_by_the_other(
    fleet: list[LiveServer],
) -> None:
    a, b = fleet
    created = a.create_client("--name", "fleet")
    auth = (created["client_id"], created["client_secret"])
    with httpx2.Client(timeout=10) as http:
        tokens = []
        for server in (a, b, a, b):
            r = http.post(server.token_url, data={"grant_type": CC}, auth=auth)
            assert r.status_code == 200, r.text
            tokens.append(r.json()["access_token"])
        for _ in range(3):  # every process has verified, and remembers, every token
            for server in fleet:
                for token in tokens:
                    assert introspect(http, server, auth, token)["active"] is True

        revoke(http, a, auth, tokens[1])  # issued by b, revoked through a
        assert introspect(http, b, auth, tokens[1]) == {"active": False}
        assert introspect(http, a, auth, tokens[1]) == {"active": False}

        revoke(http, b, auth, tokens[0])  # issued by a, revoked through b
        assert introspect(http, a, auth, tokens[0]) == {"active": False}
        assert introspect(http, b, auth, tokens[0]) == {"active": False}

        # Through the admin side (the CLI writes to the database, no server involved).
        jti = introspect(http, a, auth, tokens[2])["jti"]
        done = a.cli("tokens", "revoke", jti, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["token_ids"] == [jti]
        assert introspect(http, b, auth, tokens[2]) == {"active": False}
        assert introspect(http, a, auth, tokens[2]) == {"active": False}

        for server in fleet:  # the one left alone is still active everywhere
            assert introspect(http, server, auth, tokens[3])["active"] is True
