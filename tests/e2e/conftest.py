"""End-to-end harness: a real ``keyturn serve`` process on a free loopback port.

`live_server` starts the server once per backend (SQLite, PostgreSQL) for the
session; `LiveServer.create_client` registers clients through the real CLI
against the same database, so tests talk to the product exactly as users do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from keyturn.testing.ports import free_port
from tests.conftest import TEST_PEPPER

pytestmark = pytest.mark.e2e

KEYTURN = [sys.executable, "-m", "keyturn.cli"]


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def token_url(self) -> str:
        return self.url + "/oauth/token"

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*KEYTURN, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def create_client(self, *args: str) -> dict[str, Any]:
        """``keyturn clients create --json ARGS``: the client and its one-time secret."""
        if not any(a.startswith("--rate-limit") for a in args):
            args = (*args, "--rate-limit", "0")
        done = self.cli("clients", "create", "--json", *args)
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    tmp: Path, database_url: str, *extra_args: str, extra_env: dict[str, str] | None = None
) -> LiveServer:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(
        KEYTURN_DATA_DIR=str(tmp),
        KEYTURN_DATABASE_URL=database_url,
        KEYTURN_PEPPER=TEST_PEPPER,
        KEYTURN_ISSUER=f"http://127.0.0.1:{port}",
        KEYTURN_CLIENT_CACHE_TTL="0",
    )
    env.update(extra_env or {})
    log_path = tmp / "server.log"
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [*KEYTURN, "serve", "--host", "127.0.0.1", "--port", str(port), *extra_args],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    server = LiveServer(url, env, process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"keyturn serve exited early:\n{server.log()}")
        try:
            if httpx2.get(url + "/.well-known/oauth-authorization-server", timeout=1).is_success:
                return server
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"keyturn serve did not become ready:\n{server.log()}")


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=15)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A running server per backend, shared by the session's end-to-end tests."""
    tmp = tmp_path_factory.mktemp(f"live-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'keyturn.db'}"
    else:
        url = request.getfixturevalue("postgres_database_url")
    server = start_server(tmp, url)
    yield server
    stop_server(server)
