"""Who may introspect and revoke what, on a real server (issue 17, item 13).

Every client acts on its own tokens; a resource server registered with
``--can-introspect`` introspects any token; a client with the ``keyturn:admin``
scope introspects and revokes any token, as it may through the admin API. A
client that lacks the permission is told so (``not_permitted``), and a guard
whose introspection client lacks it says what is wrong instead of calling
every valid token revoked.
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from keyturn.client.api import KeyturnClient
from keyturn.core.errors import InvalidTokenError, ServerError, UnauthorizedClientError
from keyturn.guard import Introspection, TokenVerifier
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e


def token_of(server: LiveServer, client: dict[str, Any]) -> str:
    r = httpx2.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert r.status_code == 200, r.text
    value: str = r.json()["access_token"]
    return value


def sdk(server: LiveServer, client: dict[str, Any]) -> KeyturnClient:
    return KeyturnClient(
        server.url, client_id=client["client_id"], client_secret=client["client_secret"]
    )


def test_an_admin_client_introspects_and_revokes_any_token(live_server: LiveServer) -> None:
    owner = live_server.create_client()
    admin = live_server.create_client("--scope", "keyturn:admin")
    token = token_of(live_server, owner)
    with sdk(live_server, admin) as kt:
        info = kt.introspect(token)
        assert info.active is True
        assert info.client_id == owner["client_id"]
        kt.revoke(token)
        assert kt.introspect(token).active is False
    with sdk(live_server, owner) as mine:
        assert mine.introspect(token).active is False  # revoked for everyone


def test_a_client_without_the_permission_is_told_so(live_server: LiveServer) -> None:
    owner = live_server.create_client()
    other = live_server.create_client()
    token = token_of(live_server, owner)
    with sdk(live_server, other) as kt:
        info = kt.introspect(token)
        assert info.active is False
        assert "can-introspect" in info.extra["not_permitted"]
        # A token that does not exist is simply inactive (no permission is involved).
        assert kt.introspect("never-issued").extra == {}
        with pytest.raises(UnauthorizedClientError) as refused:
            kt.revoke(token)
        assert "keyturn:admin" in str(refused.value)
    with sdk(live_server, owner) as mine:
        assert mine.introspect(token).active is True  # untouched
        assert "not_permitted" not in mine.introspect(token).extra


def verifier(server: LiveServer, client: dict[str, Any]) -> TokenVerifier:
    return TokenVerifier(
        server.url,
        server.url,  # the default audience is the issuer
        revocation=Introspection(client["client_id"], client["client_secret"], cache_ttl=0),
    )


def test_a_guard_whose_client_may_not_introspect_says_so(live_server: LiveServer) -> None:
    owner = live_server.create_client()
    plain = live_server.create_client()
    resource_server = live_server.create_client("--can-introspect")
    token = token_of(live_server, owner)

    misconfigured = verifier(live_server, plain)
    with pytest.raises(ServerError) as wrong:
        misconfigured.verify(token)
    assert "introspect" in str(wrong.value)
    assert "revoked" not in str(wrong.value)
    misconfigured.close()

    guard = verifier(live_server, resource_server)
    assert guard.verify(token).client_id == owner["client_id"]
    with sdk(live_server, owner) as mine:
        mine.revoke(token)
    with pytest.raises(InvalidTokenError, match="revoked"):
        guard.verify(token)
    guard.close()
