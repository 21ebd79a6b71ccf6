"""Zero-downtime secret rotation from the CLI, across two real ``keyturn serve`` processes.

Both servers share one database and cache client records for five minutes, as a
fleet may: a rotation made by the CLI must not lock the new secret out of a
process that still holds the old record, and the old secret must keep working
everywhere until its overlap ends, then nowhere.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import KEYTURN, LiveServer, start_server, stop_server

pytestmark = pytest.mark.e2e
CC = "client_credentials"


@pytest.fixture
def fleet(tmp_path: Path, postgres_database_url: str) -> Iterator[list[LiveServer]]:
    """Two servers on PostgreSQL, a fleet's database (SQLite's storage is tested alike
    elsewhere; the CLI's rotation on it in test_server_token.py)."""
    cached = {"KEYTURN_CLIENT_CACHE_TTL": "300"}
    servers: list[LiveServer] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            servers.append(start_server(tmp_path / name, postgres_database_url, extra_env=cached))
        yield servers
    finally:
        for server in servers:
            stop_server(server)


def status(server: LiveServer, cid: str, secret: str) -> int:
    r = httpx2.post(server.token_url, data={"grant_type": CC}, auth=(cid, secret), timeout=10)
    return r.status_code


def cli_json(server: LiveServer, *args: str) -> Any:
    done = server.cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_rotation_with_an_overlap_across_two_processes(fleet: list[LiveServer]) -> None:
    a, b = fleet
    created = a.create_client("--name", "rotating")
    cid, s0 = created["client_id"], created["client_secret"]
    assert [status(a, cid, s0), status(b, cid, s0)] == [200, 200]  # both cache it now

    # A long overlap: both secrets work on both servers, and the listings show both.
    first = cli_json(a, "clients", "rotate-secret", cid, "--overlap", "3600")
    s1 = first["client_secret"]
    current, previous = first["secrets"]
    assert (current["label"], current["expires_at"]) == ("current", None)
    assert previous["label"] == "previous"
    assert previous["expires_at"] == current["created_at"] + 3600
    # b still has the record with s0 only: s1 fails there, is reloaded, and passes.
    assert [status(b, cid, s1), status(a, cid, s1)] == [200, 200]
    assert [status(b, cid, s0), status(a, cid, s0)] == [200, 200]
    listed = next(c for c in cli_json(a, "clients", "list") if c["client_id"] == cid)
    assert listed["secrets"] == [current, previous]
    assert s0 not in json.dumps(listed)
    assert s1 not in json.dumps(listed)
    shown = subprocess.run(
        [*KEYTURN, "clients", "show", cid],
        env={**a.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(previous["expires_at"]))
    assert f"previous until {until}" in shown
    assert "current since" in shown

    # A short overlap: s0 is dropped at once (two secrets at most), s1 works for 5 s.
    second = cli_json(b, "clients", "rotate-secret", cid, "--overlap", "5")
    s2 = second["client_secret"]
    expires = second["secrets"][1]["expires_at"]
    assert time.time() < expires - 1, "the machine is too slow for this test's 5 s overlap"
    assert [status(a, cid, s2), status(b, cid, s2)] == [200, 200]
    assert [status(a, cid, s1), status(b, cid, s1)] == [200, 200]
    assert [status(a, cid, s0), status(b, cid, s0)] == [401, 401]

    # After the overlap only the newest secret works, on either server.
    while time.time() < expires:
        time.sleep(min(0.2, max(0.0, expires - time.time())))
    assert [status(a, cid, s1), status(b, cid, s1)] == [401, 401]
    assert [status(a, cid, s2), status(b, cid, s2)] == [200, 200]
    unknown = a.cli("clients", "expire-old-secret", "no-such-client")
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert "no client 'no-such-client'" in unknown.stderr
