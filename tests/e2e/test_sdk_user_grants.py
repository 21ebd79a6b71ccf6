"""The SDK's password grant and refresh against a real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import secrets

import httpx2
import pytest

from keyturn.client import OAuth2Auth, OAuthError, PasswordCredentials, TokenManager
from tests.e2e.conftest import LiveServer

PASSWORD = "a long enough password"


def make_user(server: LiveServer) -> str:
    username = "user-" + secrets.token_hex(4)
    done = server.cli("users", "create", username, "--password", PASSWORD)
    assert done.returncode == 0, done.stderr
    return username


def test_password_grant_through_the_sdk_then_refresh(live_server: LiveServer) -> None:
    username = make_user(live_server)
    client = live_server.create_client(
        "--grant",
        "password",
        "--grant",
        "refresh_token",
        "--scope",
        "openid",
        "--scope",
        "profile",
    )
    credentials = PasswordCredentials(
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        issuer=live_server.url,
        username=username,
        password=PASSWORD,
        scopes=("openid", "profile"),
    )
    with httpx2.Client(auth=OAuth2Auth(credentials)) as http:
        info = http.get(live_server.url + "/oauth/userinfo")
    assert info.status_code == 200, info.text
    assert info.json()["preferred_username"] == username

    with TokenManager(credentials) as manager:
        first = manager.fetch_token()
        assert first.refresh_token
        assert first.id_token
        second = manager.refresh_token()
        assert second.access_token != first.access_token
        assert second.refresh_token != first.refresh_token, "refresh tokens rotate"


def test_wrong_password_is_a_typed_provider_error(live_server: LiveServer) -> None:
    username = make_user(live_server)
    client = live_server.create_client("--grant", "password", "--scope", "openid")
    credentials = PasswordCredentials(
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        token_url=live_server.token_url,
        username=username,
        password="not the password",
    )
    with TokenManager(credentials) as manager, pytest.raises(OAuthError) as caught:
        manager.fetch_token()
    assert caught.value.error == "invalid_grant"
    assert caught.value.status_code == 400
    assert "not the password" not in repr(caught.value)
