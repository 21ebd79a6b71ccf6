"""FakeTokenServer never lies: the same SDK scenarios against it and the real server (issue 17, 9).

Each scenario is one function of a `World` (a fake or a real server, and the
credentials to use there) and returns what a caller can observe: the token
response's shape, the typed errors, rotation and revocation. Both worlds must
observe the same. The real one is the plugin's ``keyturn_server`` fixture.
Not covered: the authorization-code flow (the real server needs a browser
login; tests/e2e/test_browser_code_flow.py drives it) and the protected API
(the real server has none of its own).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from keyturn.client import (
    ClientCredentials,
    InvalidClientError,
    InvalidGrantError,
    OAuthToken,
    PasswordCredentials,
    RevocationStatus,
    TokenManager,
)
from keyturn.testing import FakeTokenServer
from keyturn.testing.live import KeyturnServer

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


@dataclass
class World:
    name: str
    issuer: str
    machine: ClientCredentials
    user: PasswordCredentials
    http: Callable[[], httpx2.Client]

    @contextlib.contextmanager
    def manager(self, credentials: Any) -> Iterator[TokenManager]:
        with self.http() as client, TokenManager(credentials, http_client=client) as manager:
            yield manager


@pytest.fixture(scope="module")
def real_world(keyturn_server: KeyturnServer) -> World:
    machine = keyturn_server.create_client("--scope", "read")
    user = keyturn_server.create_client(
        "--grant", "password", "--grant", "refresh_token", "--scope", "openid read"
    )
    username = "user-" + secrets.token_hex(4)
    keyturn_server.create_user(username, PASSWORD)
    issuer = keyturn_server.issuer
    return World(
        "real",
        issuer,
        ClientCredentials(
            client_id=machine["client_id"],
            client_secret=machine["client_secret"],
            issuer=issuer,
            scopes=("read",),
        ),
        PasswordCredentials(
            client_id=user["client_id"],
            client_secret=user["client_secret"],
            issuer=issuer,
            username=username,
            password=PASSWORD,
            scopes=("openid", "read"),
        ),
        httpx2.Client,
    )


@pytest.fixture
def fake_world() -> World:
    server = FakeTokenServer(users={"alice": PASSWORD})
    return World(
        "fake",
        server.issuer,
        server.client_credentials(scopes=("read",)),
        server.password_credentials(scopes=("openid", "read")),
        lambda: httpx2.Client(transport=server.transport()),
    )


@pytest.fixture(params=["fake", "real"])
def world(request: pytest.FixtureRequest) -> World:
    world: World = request.getfixturevalue(f"{request.param}_world")
    return world


def _shape(token: OAuthToken) -> dict[str, Any]:
    return {
        "token_type": token.token_type.lower(),
        "has_expires_in": token.expires_in is not None,
        "scope": token.scope,
        "refresh_token": token.refresh_token is not None,
        "id_token": token.id_token is not None,
    }


OBSERVED: dict[str, dict[str, object]] = {}


def observe(world: World, scenario: str, value: object) -> None:
    """Record what ``world`` showed; the second world must show the same."""
    seen = OBSERVED.setdefault(scenario, {})
    seen[world.name] = value
    if len(seen) == 2:
        assert seen["fake"] == seen["real"], scenario


def test_client_credentials(world: World) -> None:
    with world.manager(world.machine) as manager:
        observe(world, "client_credentials", _shape(manager.fetch_token()))


def test_wrong_secret(world: World) -> None:
    wrong = world.machine.clone_with(client_secret="not-the-secret")
    with world.manager(wrong) as manager, pytest.raises(InvalidClientError) as caught:
        manager.fetch_token()
    observe(world, "wrong_secret", (caught.value.error, caught.value.status_code))


def test_password_grant_with_an_id_token_then_rotation(world: World) -> None:
    with world.manager(world.user) as manager:
        first = manager.fetch_token()
        assert first.id_token_claims is not None  # validated with the world's JWKS
        second = manager.refresh_token()
        assert second.id_token_claims is not None
        assert second.id_token_claims["sub"] == first.id_token_claims["sub"]
        rotated = second.refresh_token != first.refresh_token
        observe(world, "password", (_shape(first), _shape(second), rotated))
        # A rotated refresh token presented again at once (a concurrent refresh that
        # lost the race) gets the same answer, inside the grace window ...
        with world.manager(world.user.clone_with(token=first)) as racer:
            replayed = racer.refresh_token()
        observe(world, "replay", replayed.access_token == second.access_token)
        # ... but not once its successor is revoked: then it is reuse.
        manager.revoke()
    with world.manager(world.user.clone_with(token=first)) as stale:
        with pytest.raises(InvalidGrantError) as caught:
            stale.refresh_token()
        observe(world, "reuse", caught.value.status_code)


def test_revocation(world: World) -> None:
    with world.manager(world.user) as manager:
        token = manager.fetch_token()
        result = manager.revoke()
        assert result.refresh_token is not None
        assert result.access_token is not None
        observe(
            world,
            "revoke",
            (result.refresh_token.status, result.access_token.status, result.grant_ended),
        )
        assert result.refresh_token.status is RevocationStatus.REVOKED
    with (
        world.manager(world.user.clone_with(token=token)) as after,
        pytest.raises(InvalidGrantError),
    ):
        after.refresh_token()
    # An unknown token is "revoked" too (RFC 7009 §2.2).
    unknown = OAuthToken(access_token="no-such-token-" + secrets.token_hex(4))
    with world.manager(world.user.clone_with(token=unknown)) as again:
        observe(world, "revoke_unknown", again.revoke().access_token)


def test_discovery(world: World) -> None:
    with world.http() as client:
        documents = [
            client.get(world.issuer + path)
            for path in (
                "/.well-known/oauth-authorization-server",
                "/.well-known/openid-configuration",
            )
        ]
    fields = ("issuer", "token_endpoint", "revocation_endpoint", "jwks_uri")
    observe(
        world,
        "discovery",
        [(d.status_code, all(isinstance(d.json().get(f), str) for f in fields)) for d in documents],
    )
    assert documents[0].json()["issuer"] == world.issuer
