"""A real Keyturn server for tests: ``keyturn serve`` on a free loopback port.

It runs in its own process (``python -m keyturn.cli serve``), with a temporary
data directory, a SQLite database in it and a random pepper, so this module
imports nothing of the server and the base install can load it; starting one
needs ``keyturn[server]``. `KeyturnServer.create_client` and `create_user`
register through the real CLI against the same database, as an operator would.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyturn.client._http import httpx2
from keyturn.core.paths import KeyturnUrls
from keyturn.testing.ports import free_port

__all__ = ["KeyturnServer", "start_keyturn_server"]

_KEYTURN = [sys.executable, "-m", "keyturn.cli"]


@dataclass
class KeyturnServer(KeyturnUrls):
    url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.url

    @property
    def issuer(self) -> str:
        return self.url

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``keyturn ARGS`` against this server's database."""
        return subprocess.run(  # noqa: S603 - this interpreter, keyturn's own CLI
            [*_KEYTURN, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def create_client(self, *args: str) -> dict[str, Any]:
        """``keyturn clients create --json ARGS`` (no issuance limit unless given)."""
        if not any(a.startswith("--rate-limit") for a in args):
            args = (*args, "--rate-limit", "0")
        done = self.cli("clients", "create", "--json", *args)
        if done.returncode != 0:
            raise RuntimeError(f"keyturn clients create failed: {done.stderr}")
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def create_user(self, username: str, password: str) -> None:
        done = self.cli("users", "create", username, "--password", password)
        if done.returncode != 0:
            raise RuntimeError(f"keyturn users create failed: {done.stderr}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


def start_keyturn_server(data_dir: Path, *, timeout: float = 60.0) -> KeyturnServer:
    """Start ``keyturn serve`` with its data in ``data_dir``; return once it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(
        KEYTURN_DATA_DIR=str(data_dir),
        KEYTURN_DATABASE_URL=f"sqlite+aiosqlite:///{data_dir / 'keyturn.db'}",
        KEYTURN_PEPPER=secrets.token_hex(32),
        KEYTURN_ISSUER=url,
        KEYTURN_CLIENT_CACHE_TTL="0",
    )
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(  # noqa: S603 - this interpreter, keyturn's own CLI
            [*_KEYTURN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = KeyturnServer(url, data_dir, env, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"keyturn serve exited early:\n{server.log()}")
        try:
            if httpx2.get(url + "/.well-known/oauth-authorization-server", timeout=1).is_success:
                return server
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"keyturn serve did not become ready:\n{server.log()}")
