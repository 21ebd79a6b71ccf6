"""The token server as users meet it: a real process, real HTTP, real databases."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx2
import jwt as pyjwt
import pytest

from keyturn.server.settings import default_sign_processes
from tests.e2e.conftest import LiveServer, start_server, stop_server

CC = "client_credentials"


def test_client_credentials_over_http_verifies_with_jwks(live_server: LiveServer) -> None:
    client = live_server.create_client("--name", "e2e", "--scope", "read", "--scope", "write")
    assert client["client_secret"].startswith("kts_")
    r = httpx2.post(
        live_server.token_url,
        data={"grant_type": CC, "scope": "read"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read"
    # Discovery, then verification with the published JWKS alone.
    meta = httpx2.get(live_server.url + "/.well-known/oauth-authorization-server").json()
    jwks = pyjwt.PyJWKClient(meta["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(body["access_token"])
    claims = pyjwt.decode(
        body["access_token"],
        key,
        algorithms=["RS256"],
        audience=live_server.url,
        issuer=live_server.url,
    )
    assert claims["client_id"] == client["client_id"]
    assert claims["scope"] == "read"


def test_json_body_and_errors_over_http(live_server: LiveServer) -> None:
    client = live_server.create_client("--scope", "read")
    ok = httpx2.post(
        live_server.url + "/auth/v2/token",
        json={
            "grant_type": CC,
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
        },
    )
    assert ok.status_code == 200
    bad = httpx2.post(
        live_server.token_url,
        json={"grant_type": CC, "client_id": client["client_id"], "client_secret": "nope"},
    )
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    huge = httpx2.post(
        live_server.token_url,
        content=b"a=" + b"x" * 200_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413
    assert huge.json()["error"] == "invalid_request"
    assert client["client_secret"] not in live_server.log()


def test_rate_limit_over_http(live_server: LiveServer) -> None:
    client = live_server.create_client("--rate-limit", "2")
    auth = (client["client_id"], client["client_secret"])
    codes = [
        httpx2.post(live_server.token_url, data={"grant_type": CC}, auth=auth) for _ in range(3)
    ]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert int(codes[-1].headers["retry-after"]) >= 1
    assert codes[-1].json()["error"] == "slow_down"


def _issue_concurrently(server: LiveServer, auth: tuple[str, str], n: int) -> list[str]:
    """``n`` client-credentials tokens, requested 16 at a time; each must be a 200."""

    def one(_: int) -> str:
        r = httpx2.post(server.token_url, data={"grant_type": CC}, auth=auth, timeout=30)
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_issuance_records_every_token(live_server: LiveServer) -> None:
    client = live_server.create_client()
    tokens = _issue_concurrently(live_server, (client["client_id"], client["client_secret"]), 64)
    assert len({pyjwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}) == 64


def test_client_cli_lifecycle(live_server: LiveServer) -> None:
    client = live_server.create_client("--name", "rotating")
    cid = client["client_id"]
    shown = live_server.cli("clients", "show", cid, "--json")
    assert shown.returncode == 0
    assert client["client_secret"] not in shown.stdout
    rotated = live_server.cli("clients", "rotate-secret", cid, "--json")
    assert rotated.returncode == 0, rotated.stderr
    import json

    new_secret = json.loads(rotated.stdout)["client_secret"]
    auth = (cid, client["client_secret"])
    # The old secret works for the overlap (a day by default), or until ended early.
    old = httpx2.post(live_server.token_url, data={"grant_type": CC}, auth=auth)
    assert old.status_code == 200
    ended = live_server.cli("clients", "expire-old-secret", cid)
    assert ended.returncode == 0, ended.stderr
    old = httpx2.post(live_server.token_url, data={"grant_type": CC}, auth=auth)
    assert old.status_code == 401
    new = httpx2.post(live_server.token_url, data={"grant_type": CC}, auth=(cid, new_secret))
    assert new.status_code == 200
    deleted = live_server.cli("clients", "delete", cid, "--yes")
    assert deleted.returncode == 0
    gone = httpx2.post(live_server.token_url, data={"grant_type": CC}, auth=(cid, new_secret))
    assert gone.status_code == 401
    missing = live_server.cli("clients", "show", cid)
    assert missing.returncode == 1
    assert "no client" in missing.stderr


def test_several_workers_share_one_sqlite_database(tmp_path: Path) -> None:
    server = start_server(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", "--workers", "2")
    try:
        client = server.create_client()
        auth = (client["client_id"], client["client_secret"])
        with httpx2.Client() as http:
            kids = set()
            for _ in range(20):
                r = http.post(server.token_url, data={"grant_type": CC}, auth=auth)
                assert r.status_code == 200, r.text
                kids.add(pyjwt.get_unverified_header(r.json()["access_token"])["kid"])
        assert len(kids) == 1, "workers must share one signing key"
    finally:
        stop_server(server)


@pytest.mark.parametrize("step", ["rotate"])
def test_key_rotation_publishes_before_signing(tmp_path: Path, step: str) -> None:
    server = start_server(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'k.db'}",
        extra_env={"KEYTURN_KEY_REFRESH_INTERVAL": "0.2"},
    )
    try:
        client = server.create_client()
        auth = (client["client_id"], client["client_secret"])
        before = httpx2.post(server.token_url, data={"grant_type": CC}, auth=auth).json()
        old_kid = pyjwt.get_unverified_header(before["access_token"])["kid"]
        done = server.cli("keys", "rotate", "--alg", "ES256", "--delay", "3600", "--json")
        assert done.returncode == 0, done.stderr
        import json
        import time

        new_kid = json.loads(done.stdout)["kid"]
        time.sleep(0.5)  # one refresh interval of the server process
        kids = {k["kid"] for k in httpx2.get(server.url + "/.well-known/jwks.json").json()["keys"]}
        assert {old_kid, new_kid} <= kids, "the new key is published at once"
        after = httpx2.post(server.token_url, data={"grant_type": CC}, auth=auth).json()
        assert pyjwt.get_unverified_header(after["access_token"])["kid"] == old_kid, (
            "the new key must not sign before its delay"
        )
    finally:
        stop_server(server)


def test_serve_database_url_option_wins_over_the_environment(tmp_path: Path) -> None:
    chosen = f"sqlite+aiosqlite:///{tmp_path / 'chosen.db'}"
    ignored = f"sqlite+aiosqlite:///{tmp_path / 'ignored.db'}"
    server = start_server(tmp_path, ignored, "--database-url", chosen)
    try:
        server.env["KEYTURN_DATABASE_URL"] = chosen  # the CLI registers in the chosen one
        client = server.create_client()
        r = httpx2.post(
            server.token_url,
            data={"grant_type": CC},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert r.status_code == 200, r.text
        assert (tmp_path / "chosen.db").exists()
    finally:
        stop_server(server)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_helper_processes_sign_under_load_and_a_killed_one_loses_nothing(
    tmp_path: Path,
) -> None:
    import os
    import signal

    server = start_server(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'k.db'}",
        extra_env={"KEYTURN_SIGN_PROCESSES": "2"},
    )
    try:
        helpers = _children(server.process.pid)
        assert len(helpers) == 2, "one helper per KEYTURN_SIGN_PROCESSES"
        client = server.create_client()
        auth = (client["client_id"], client["client_secret"])
        jwks = pyjwt.PyJWKSet.from_dict(httpx2.get(server.url + "/.well-known/jwks.json").json())

        def burst(n: int) -> None:
            for token in _issue_concurrently(server, auth, n):
                kid = pyjwt.get_unverified_header(token)["kid"]
                key = next(k for k in jwks.keys if k.key_id == kid)
                pyjwt.decode(token, key.key, algorithms=["RS256"], audience=server.url)

        before = sum(_cpu_ticks(p) for p in helpers)
        burst(300)
        assert sum(_cpu_ticks(p) for p in helpers) > before, "the helpers signed"

        os.kill(helpers[0], signal.SIGKILL)
        burst(100)  # the other helper and the threads take over
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = _children(server.process.pid)
            if len(now) == 2 and helpers[0] not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2, "a new helper replaces the dead one"
        assert helpers[0] not in now
        assert "signing helper" in server.log()
    finally:
        stop_server(server)
    assert "shutdown failed" not in server.log()
    for pid in now:  # the server waited for them at shutdown
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid), "helpers end with the server"


def _helpers_of(pid: int) -> list[int]:
    return [c for c in _children(pid) if b"signing_helper" in _cmdline(c)]


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


@pytest.mark.parametrize(
    ("args", "per_process"),
    [
        (("--sign-processes", "1"), 1),
        (("--sign-processes", "0"), 0),  # threads only
    ],
)
def test_serve_sign_processes_option(
    tmp_path: Path, args: tuple[str, ...], per_process: int
) -> None:
    server = start_server(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", *args)
    try:
        assert len(_helpers_of(server.process.pid)) == per_process
    finally:
        stop_server(server)


def test_workers_share_the_cores_between_their_signing_helpers(tmp_path: Path) -> None:

    server = start_server(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", "--workers", "2")
    expected = default_sign_processes(workers=2)
    try:
        deadline = time.monotonic() + 15  # "ready" means one worker is up, maybe not both
        while time.monotonic() < deadline:
            counts = [len(_helpers_of(c)) for c in _children(server.process.pid)]
            if counts.count(expected) == 2:
                break
            time.sleep(0.1)
        assert sorted(c for c in counts if c) == [expected, expected]
    finally:
        stop_server(server)


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize(("env", "frozen"), [({}, True), ({"KEYTURN_GC_FREEZE": "false"}, False)])
def test_keyturn_serve_freezes_its_start_up_heap_unless_told_not_to(
    tmp_path: Path, env: dict[str, str], frozen: bool
) -> None:
    server = start_server(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'k.db'}",
        "--log-level",
        "debug",
        extra_env={"KEYTURN_SIGN_PROCESSES": "0", **env},
    )
    try:
        client = server.create_client()
        r = httpx2.post(
            server.token_url,
            data={"grant_type": CC},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert r.status_code == 200, r.text  # and it serves as ever
    finally:
        stop_server(server)
    lines = [line for line in server.log().splitlines() if "start-up objects" in line]
    assert len(lines) == (1 if frozen else 0), server.log()[-2000:]
