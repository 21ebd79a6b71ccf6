"""The auth-manager API: explicit fetch/refresh, authorization code with PKCE, revoke, discovery."""

from __future__ import annotations

import httpx2
import pytest

from keyturn.client import (
    AccessDeniedError,
    AuthManager,
    ClientCredentials,
    StateMismatchError,
    TokenManager,
)
from keyturn.testing import FakeClock, FakeTokenServer
from tests.client.conftest import API, MakeManager


def test_explicit_fetch_refresh_and_expiry(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager(server.password_credentials())
    assert AuthManager is TokenManager
    assert manager.is_token_expired()
    first = manager.fetch_token()
    assert not manager.is_token_expired()
    refreshed = manager.refresh_token()
    assert refreshed.access_token != first.access_token
    assert server.grants == {"password": 1, "refresh_token": 1}
    clock.advance(3600 - 59)
    assert manager.is_refresh_due()  # within the 60 s leeway: the manager renews...
    assert not manager.is_token_expired()  # ...a token that is not yet expired


def test_authorization_code_flow_with_pkce_and_extra_params(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    manager = make_manager(server.authorization_code_credentials(scopes=("openid",)))
    url = manager.get_authorization_url(additional_params={"prompt": "consent"})
    assert "prompt=consent" in url
    assert "code_challenge_method=S256" in url
    redirect = server.authorize(url)
    code = manager.parse_redirect(redirect)
    token = manager.fetch_token(code)  # the fake server checks the PKCE verifier
    assert token.refresh_token is not None
    with httpx2.Client(auth=manager.auth(), transport=server.transport()) as client:
        assert client.get(API).json()["sub"] == "alice"


def test_given_state_is_used(make_manager: MakeManager, server: FakeTokenServer) -> None:
    manager = make_manager(server.authorization_code_credentials())
    url = manager.get_authorization_url(state="my-state")
    assert "state=my-state" in url
    assert manager.parse_redirect(server.authorize(url))


def test_redirect_errors(make_manager: MakeManager, server: FakeTokenServer) -> None:
    manager = make_manager(server.authorization_code_credentials())
    url = manager.get_authorization_url()
    with pytest.raises(AccessDeniedError) as denied:
        manager.parse_redirect(server.authorize(url, deny=True))
    assert denied.value.description == "the user said no"
    with pytest.raises(StateMismatchError):
        manager.parse_redirect("https://app.example/callback?code=x&state=forged")
    url = manager.get_authorization_url()
    redirect = server.authorize(url)
    manager.parse_redirect(redirect)
    with pytest.raises(StateMismatchError):
        manager.parse_redirect(redirect)  # a state is good for one redirect only


@pytest.mark.anyio
async def test_async_authorization_code_and_revoke(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    manager = make_manager(
        server.authorization_code_credentials(),
        async_http_client=httpx2.AsyncClient(transport=server.transport()),
    )
    url = await manager.aget_authorization_url()
    token = await manager.afetch_token(manager.parse_redirect(server.authorize(url)))
    refreshed = await manager.arefresh_token()
    assert refreshed.access_token != token.access_token
    await manager.arevoke()
    assert manager.token is None
    assert server.revoked == [refreshed.refresh_token, refreshed.access_token]


def test_revoke_posts_to_the_revocation_endpoint_and_forgets(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    manager = make_manager(server.password_credentials(revocation_url=server.revocation_url))
    token = manager.get_token()
    manager.revoke()
    assert server.revoked == [token.refresh_token, token.access_token]
    assert manager.token is None
    assert manager.store.load(manager.core.store_key) is None  # type: ignore[union-attr]
    assert not server.access_tokens  # the whole family is gone at the server


def test_discovery_from_issuer(make_manager: MakeManager, server: FakeTokenServer) -> None:
    creds = ClientCredentials(
        client_id="client-1", client_secret="s3cret-value", issuer=server.issuer
    )
    manager = make_manager(creds)
    assert manager.fetch_token().access_token == "at-1"
    manager.revoke()  # the revocation endpoint is discovered too
    assert server.revoked == ["at-1"]


def test_clone_with_token_starts_from_that_token(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    manager = make_manager()
    token = manager.fetch_token()
    clone = manager.clone_with(token=token)
    assert clone.token is token
    assert clone.credentials.token is token
    assert manager.credentials.token is None
    with httpx2.Client(auth=clone.auth(), transport=server.transport()) as client:
        client.get(API)
    assert server.token_requests == 1


def test_clock_skew_estimated_from_date_header(make_manager: MakeManager, clock: FakeClock) -> None:
    server = FakeTokenServer(clock=clock, server_clock_skew=120)
    manager = make_manager(
        server.client_credentials(), http_client=httpx2.Client(transport=server.transport())
    )
    manager.fetch_token()
    assert manager.clock_skew == pytest.approx(120, abs=1)


def test_missing_expires_in_gets_the_default_lifetime(
    make_manager: MakeManager, clock: FakeClock
) -> None:
    server = FakeTokenServer(clock=clock, expires_in=None)
    manager = make_manager(
        server.client_credentials(),
        http_client=httpx2.Client(transport=server.transport()),
        default_lifetime=600,
    )
    token = manager.get_token()
    assert token.expires_in is None
    assert token.expires_at == clock.time() + 600
    clock.advance(600 - 61)
    assert manager.get_token() is token
    clock.advance(2)
    assert manager.get_token() is not token


def test_expired_means_the_same_for_the_token_and_the_manager(
    make_manager: MakeManager, clock: FakeClock
) -> None:
    """Issue 17, item 6: ``is_token_expired`` agrees with ``OAuthToken.is_expired``."""
    manager = make_manager(leeway=120.0, jitter=0.5)
    token = manager.fetch_token()  # expires_in 3600
    for elapsed in (0, 3000, 3419, 3481, 3539, 3540, 3599, 3600, 4000):
        clock.advance(elapsed - (clock.time() - 1_700_000_000.0))
        for leeway in (0.0, 60.0):
            assert manager.is_token_expired(leeway) == token.is_expired(leeway, clock=clock), (
                elapsed,
                leeway,
            )
        # The refresh point comes first: leeway 120 s (plus up to half of it), never later.
        assert manager.is_refresh_due() >= manager.is_token_expired()
    assert manager.is_refresh_due()
