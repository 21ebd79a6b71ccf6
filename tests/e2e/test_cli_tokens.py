"""`keyturn tokens ...` and `keyturn users ...` against the same database as a running server."""

from __future__ import annotations

import json
import secrets

import httpx2

from tests.e2e.conftest import LiveServer


def cli_json(server: LiveServer, *args: str) -> object:
    done = server.cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_tokens_commands(live_server: LiveServer) -> None:
    client = live_server.create_client("--scope", "read")
    cid = client["client_id"]
    created = cli_json(
        live_server,
        "tokens",
        "create",
        "--client-id",
        cid,
        "--subject",
        "bob",
        "--scope",
        "read",
        "--lifetime",
        "600",
    )
    assert isinstance(created, dict)
    token, token_id = created["access_token"], created["token_id"]
    assert created["expires_in"] == 600
    # The server honours a token minted by the CLI.
    body = httpx2.post(
        live_server.url + "/oauth/introspect",
        data={"token": token},
        auth=(cid, client["client_secret"]),
    ).json()
    assert body["active"] is True
    assert body["sub"] == "bob"

    listed = cli_json(live_server, "tokens", "list", "--client-id", cid, "--active")
    assert isinstance(listed, dict)
    assert [t["token_id"] for t in listed["items"]] == [token_id]
    shown = cli_json(live_server, "tokens", "show", token_id)
    assert isinstance(shown, dict)
    assert shown["subject"] == "bob"
    assert token not in json.dumps(shown)

    revoked = cli_json(live_server, "tokens", "revoke", token_id)
    assert revoked == {"revoked": 1, "token_ids": [token_id]}
    body = httpx2.post(
        live_server.url + "/oauth/introspect",
        data={"token": token},
        auth=(cid, client["client_secret"]),
    ).json()
    assert body == {"active": False}

    for _ in range(2):
        cli_json(live_server, "tokens", "create", "--client-id", cid)
    all_revoked = cli_json(live_server, "tokens", "revoke-all", "--client-id", cid, "--access-only")
    assert isinstance(all_revoked, dict)
    assert all_revoked["revoked"] == 2
    purged = cli_json(live_server, "tokens", "purge")
    assert isinstance(purged, dict)
    assert purged["purged"] >= 0

    table = live_server.cli("tokens", "list", "--client-id", cid)
    assert table.returncode == 0
    assert "revoked" in table.stdout
    missing = live_server.cli("tokens", "show", "no-such-token")
    assert missing.returncode == 1
    assert "no token" in missing.stderr
    both = live_server.cli("tokens", "revoke", token_id, "--token", token)
    assert both.returncode == 1


def test_users_commands(live_server: LiveServer) -> None:
    name = "carol-" + secrets.token_hex(3)
    created = cli_json(live_server, "users", "create", name, "--password", "first password")
    assert isinstance(created, dict)
    assert created["username"] == name
    assert "password" not in json.dumps(created)
    duplicate = live_server.cli("users", "create", name, "--password", "first password")
    assert duplicate.returncode == 1
    short = live_server.cli("users", "create", name + "x", "--password", "short")
    assert short.returncode == 1
    assert "at least 8" in short.stderr
    done = live_server.cli(
        "users", "set-password", name, "--password-stdin", stdin="second password\n"
    )
    assert done.returncode == 0, done.stderr
    client = live_server.create_client("--grant", "password", "--scope", "read")
    auth = (client["client_id"], client["client_secret"])
    old = httpx2.post(
        live_server.token_url,
        auth=auth,
        data={"grant_type": "password", "username": name, "password": "first password"},
    )
    assert old.status_code == 400
    new = httpx2.post(
        live_server.token_url,
        auth=auth,
        data={"grant_type": "password", "username": name, "password": "second password"},
    )
    assert new.status_code == 200, new.text
    users = cli_json(live_server, "users", "list")
    assert isinstance(users, list)
    assert name in [u["username"] for u in users]
    deleted = live_server.cli("users", "delete", name, "--yes")
    assert deleted.returncode == 0
    assert "revoked 1 token" in deleted.stdout
