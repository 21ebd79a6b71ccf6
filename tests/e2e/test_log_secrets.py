"""A full run of a real server at DEBUG level logs no secret, and every line has its request id.

One server per log format (text on SQLite; JSON on PostgreSQL, with a password in
its database URL), with the access log on. Every grant, refresh, revocation,
introspection, a wrong secret, a wrong password and admin API calls go through
it; every secret value the run used or received is collected, and none may occur
in the server's output. JSON lines must all parse and carry the request id of
the request they were logged in; ``X-Request-ID`` is echoed, or replaced when
it is not sane.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest

from tests.conftest import TEST_PEPPER
from tests.e2e.conftest import LiveServer, start_server, stop_server

REDIRECT = "http://127.0.0.1:9/callback"


class Secrets:
    """Every secret value of the run, and what must not be in the log because of it."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, name: str, value: str | None) -> str:
        assert value, f"{name} is empty"
        assert len(value) >= 8, f"{name} is too short to search for"
        self.values[f"{name} #{len(self.values)}"] = value
        if value.count(".") == 2:  # a JWT: its signature alone must not show either
            self.values[f"{name} signature #{len(self.values)}"] = value.rsplit(".", 1)[1]
        return value

    def found_in(self, log: str) -> list[str]:
        return [name for name, value in self.values.items() if value in log]


@pytest.fixture(params=["text", "json"])
def run(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, LiveServer, Secrets]]:
    found = Secrets()
    found.add("pepper", TEST_PEPPER)
    if request.param == "text":
        url = f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"
        server = start_server(
            tmp_path,
            url,
            "--access-log",
            "--log-level",
            "debug",
            extra_env={"KEYTURN_REFRESH_GRACE_PERIOD": "0"},
        )
    else:
        # The local server trusts its clients, so it accepts (and ignores) a password.
        shared: str = request.getfixturevalue("postgres_database_url")
        password = found.add("database password", "dbpw-" + secrets.token_hex(12))
        url = shared.replace("://postgres@", f"://postgres:{password}@", 1)
        assert password in url
        server = start_server(
            tmp_path,
            url,
            "--access-log",
            extra_env={
                "KEYTURN_LOG_FORMAT": "json",
                "KEYTURN_LOG_LEVEL": "debug",
                "KEYTURN_REFRESH_GRACE_PERIOD": "0",
            },
        )
    try:
        yield request.param, server, found
    finally:
        stop_server(server)


def pkce(found: Secrets) -> tuple[str, str]:
    verifier = found.add("code_verifier", secrets.token_urlsafe(48))
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hidden(page: str, found: Secrets) -> dict[str, str]:
    fields = {
        k: html.unescape(v)
        for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    }
    for name, value in fields.items():
        if "csrf" in name:
            found.add(name, value)
    return fields


def tokens(found: Secrets, response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    for name in ("access_token", "refresh_token", "id_token", "client_secret"):
        if body.get(name):
            found.add(name, body[name])
    return body


def test_a_full_run_logs_no_secret(run: tuple[str, LiveServer, Secrets]) -> None:
    fmt, server, found = run
    mine = "e2e-" + secrets.token_hex(8)
    with httpx2.Client(base_url=server.url, timeout=30) as http:
        # Client credentials, introspection and revocation.
        service = server.create_client("--scope", "read")
        sid, ssecret = service["client_id"], found.add("client secret", service["client_secret"])
        r = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(sid, ssecret),
            headers={"X-Request-ID": mine},
        )
        assert r.headers["x-request-id"] == mine
        access = tokens(found, r)["access_token"]
        r = http.post("/oauth/introspect", data={"token": access}, auth=(sid, ssecret))
        assert r.status_code == 200, r.text
        assert r.json()["active"] is True
        r = http.post("/oauth/revoke", data={"token": access}, auth=(sid, ssecret))
        assert r.status_code == 200, r.text
        assert http.post(
            "/oauth/introspect", data={"token": access}, auth=(sid, ssecret)
        ).json() == {"active": False}

        # A wrong secret, and an X-Request-ID that is not sane (too long): replaced.
        wrong = found.add("wrong secret", "wrong-" + secrets.token_hex(16))
        long_id = "x" * 129
        r = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": sid, "client_secret": wrong},
            headers={"X-Request-ID": long_id},
        )
        assert r.status_code == 401, r.text
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])

        # The password grant (and a wrong password), then refresh.
        username = "user-" + secrets.token_hex(4)
        password = found.add("user password", "pw-" + secrets.token_hex(12))
        done = server.cli("users", "create", username, "--password", password)
        assert done.returncode == 0, done.stderr
        user_client = server.create_client(
            "--grant", "password", "--grant", "refresh_token", "--scope", "openid"
        )
        uid = user_client["client_id"]
        usecret = found.add("client secret", user_client["client_secret"])
        bad_password = found.add("wrong password", "badpw-" + secrets.token_hex(12))
        r = http.post(
            "/oauth/token",
            data={"grant_type": "password", "username": username, "password": bad_password},
            auth=(uid, usecret),
        )
        assert r.status_code == 400, r.text
        grant = {"grant_type": "password", "username": username, "password": password}
        first = tokens(found, http.post("/oauth/token", data=grant, auth=(uid, usecret)))
        refreshed = tokens(
            found,
            http.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                auth=(uid, usecret),
            ),
        )
        # The rotated-away refresh token presented again: reuse, the family is revoked
        # (within the second of its rotation, even a grace period of 0 replays the answer).
        for _ in range(20):
            r = http.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                auth=(uid, usecret),
            )
            if r.status_code != 200:
                break
            time.sleep(0.1)
        assert r.status_code == 400, r.text
        r = http.post(
            "/oauth/introspect", data={"token": refreshed["access_token"]}, auth=(uid, usecret)
        )
        assert r.json() == {"active": False}

        # Authorization code with PKCE, through the login and consent pages.
        public = server.create_client(
            "--public",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--scope",
            "openid",
            "--redirect-uri",
            REDIRECT,
        )
        verifier, challenge = pkce(found)
        state = found.add("state", secrets.token_urlsafe(16))
        nonce = found.add("nonce", secrets.token_urlsafe(16))
        query = urlencode(
            {
                "response_type": "code",
                "client_id": public["client_id"],
                "redirect_uri": REDIRECT,
                "scope": "openid",
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "login_hint": username,
            }
        )
        page = http.get("/oauth/authorize?" + query)
        assert page.status_code == 200, page.text
        r = http.post(
            "/oauth/login",
            data={**hidden(page.text, found), "username": username, "password": password},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        found.add("session cookie", http.cookies["kt_session"])
        page = http.get(r.headers["location"], follow_redirects=False)
        assert page.status_code == 200, page.text
        r = http.post(
            "/oauth/authorize",
            data={**hidden(page.text, found), "decision": "allow"},
            follow_redirects=False,
        )
        assert r.status_code in (302, 303), r.text
        answer = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
        assert answer["state"] == state
        code = found.add("authorization code", answer["code"])
        redeem = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": public["client_id"],
            "code_verifier": verifier,
        }
        issued = tokens(found, http.post("/oauth/token", data=redeem))
        assert issued["id_token"]
        r = http.post("/oauth/token", data=redeem)  # a replayed code
        assert r.status_code == 400, r.text

        # The admin API: list, create a client, mint and revoke a token, rotate a secret.
        admin = server.create_client("--scope", "keyturn:admin")
        asecret = found.add("admin client secret", admin["client_secret"])
        admin_token = tokens(
            found,
            http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(admin["client_id"], asecret),
            ),
        )["access_token"]
        bearer = {"Authorization": f"Bearer {admin_token}"}
        assert http.get("/admin/v1/clients", headers=bearer).status_code == 200
        made = tokens(
            found,
            http.post("/admin/v1/clients", json={"scopes": ["read"]}, headers=bearer),
        )
        new_id = made["client"]["client_id"]
        minted = tokens(
            found,
            http.post("/admin/v1/tokens", json={"client_id": new_id}, headers=bearer),
        )
        r = http.post(
            "/admin/v1/tokens/revoke", json={"token": minted["access_token"]}, headers=bearer
        )
        assert r.status_code == 200, r.text
        tokens(
            found,
            http.post(f"/admin/v1/clients/{new_id}/rotate-secret", headers=bearer),
        )
        r = http.get(f"/admin/v1/tokens?client_id={sid}", headers=bearer)
        assert r.status_code == 200, r.text
        r = http.get("/admin/v1/clients", headers={"Authorization": "Bearer " + wrong})
        assert r.status_code == 401, r.text

    stop_server(server)  # every line written and flushed
    log = server.log()
    assert found.found_in(log) == [], log
    assert "/oauth/authorize?" not in log, "access lines carry no query string"

    if fmt == "json":
        entries = [json.loads(line) for line in log.splitlines() if line.strip()]
        assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
        assert all(e["ts"].endswith("Z") for e in entries)
        access = [e for e in entries if e["logger"] == "keyturn.access"]
        assert access, log
        assert all("request_id" in e and "?" not in e["path"] for e in access)
        assert all({"method", "status", "duration_ms", "client"} <= set(e) for e in access)
        ours = [e for e in access if e["request_id"] == mine]
        assert [(e["method"], e["path"], e["status"]) for e in ours] == [
            ("POST", "/oauth/token", 200)
        ]
        # Lines logged inside a request carry its id: the wrong secret's (info) line.
        refused = [e for e in entries if "invalid_client" in e["message"]]
        assert refused, log
        assert all(re.fullmatch(r"[0-9a-f]{32}", e["request_id"]) for e in refused)
    else:
        lines = [line for line in log.splitlines() if "keyturn.access" in line]
        assert lines, log
        assert all(re.search(r" keyturn\.access \[[!-~]{1,128}\] ", line) for line in lines)
        assert any(f"[{mine}]" in line and '"POST /oauth/token" 200' in line for line in lines)
