"""A client that leaves before its body arrives is not a bug to log with a traceback."""

from __future__ import annotations

import logging

import pytest

from keyturn.server.clients import build_client
from tests.server.conftest import Harness, send_raw


def test_a_client_gone_mid_body_is_logged_once_without_a_traceback(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    messages = [
        {"type": "http.request", "body": b"token=abc", "more_body": True},
        {"type": "http.disconnect"},
    ]
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", b"100"),
    ]
    with caplog.at_level(logging.INFO):
        send_raw(server, "/oauth/introspect", messages, headers)  # no exception escapes
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
