"""A client that leaves before its body arrives is not a bug to log with a traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from keyturn.server.clients import build_client
from tests.server.conftest import Harness


def test_a_client_gone_mid_body_is_logged_once_without_a_traceback(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    app = server.http.app
    sent: list[dict[str, Any]] = []
    messages = [
        {"type": "http.request", "body": b"token=abc", "more_body": True},
        {"type": "http.disconnect"},
    ]

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
        "path": "/oauth/introspect",
        "raw_path": b"/oauth/introspect",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"100"),
        ],
        "client": ("192.0.2.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    with caplog.at_level(logging.INFO):
        server.call(app, scope, receive, send)  # no exception escapes the app
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert any("went away" in r.getMessage() for r in caplog.records)


def test_every_front_end_shares_the_field_limits(server: Harness) -> None:
    """The CLI and the services build clients through the same check as the admin API."""
    with pytest.raises(ValueError, match="scope"):
        build_client(server.ctx.hasher, scopes=["x" * 500])
    with pytest.raises(ValueError, match="redirect"):
        build_client(
            server.ctx.hasher,
            grant_types=["authorization_code"],
            redirect_uris=[f"https://app.example/{i}" for i in range(50)],
        )
