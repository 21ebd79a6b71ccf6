"""In-process harness for the server: the real app, storage and keys, Starlette's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from keyturn.server.app import create_app
from keyturn.server.clients import build_client
from keyturn.server.context import ServerContext
from keyturn.server.settings import Settings
from tests.conftest import REDIS_PREFIX, TEST_PEPPER

ISSUER = "http://testserver"


@dataclass
class Harness:
    http: TestClient
    ctx: ServerContext

    def create_client(self, **options: Any) -> tuple[str, str | None]:
        options.setdefault("scopes", ["read", "write"])
        options.setdefault("rate_limit", 0)
        new = build_client(self.ctx.hasher, **options)
        self.http.portal.call(self.ctx.storage.create_client, new.client)  # type: ignore[union-attr]
        return new.client.client_id, new.secret

    def call(self, fn: Any, *args: Any) -> Any:
        return self.http.portal.call(fn, *args)  # type: ignore[union-attr]


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": database_url,
        "issuer": ISSUER,
        "pepper": TEST_PEPPER,
        "client_cache_ttl": 0,
        "sign_processes": 0,  # signing helpers have their own tests (tests/keys)
        "redis_prefix": REDIS_PREFIX,  # this run's namespace in the shared Redis
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


def run_harness(settings: Settings) -> Iterator[Harness]:
    holder: list[ServerContext] = []
    app = create_app(settings, context_hook=holder.append)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield Harness(http, holder[0])


@pytest.fixture
def server(settings: Settings) -> Iterator[Harness]:
    yield from run_harness(settings)


def send_raw(
    server: Harness,
    path: str,
    messages: list[dict[str, Any]],
    headers: list[tuple[bytes, bytes]],
) -> list[dict[str, Any]]:
    """Drive the app with raw ASGI ``messages`` (a body cut short, a disconnect), as a
    server would; what the app sent back."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    server.call(server.http.app, scope, receive, send)
    return sent
