"""The SDK validates every ID token it receives and exposes the claims (issue 17, item 2)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from keyturn.client import IdTokenError, OAuthToken, TokenManager
from keyturn.testing import FakeClock, FakeTokenServer
from tests.client.conftest import MakeManager


def _sign_in(manager: TokenManager, server: FakeTokenServer, **params: str) -> OAuthToken:
    url = manager.get_authorization_url(additional_params=params or None)
    return manager.fetch_token(manager.parse_redirect(server.authorize(url)))


def test_the_authorization_url_sends_a_nonce_and_the_claims_come_back(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    manager = make_manager(server.authorization_code_credentials(scopes=("openid", "profile")))
    url = manager.get_authorization_url()
    nonce = parse_qs(urlsplit(url).query)["nonce"][0]
    token = manager.fetch_token(manager.parse_redirect(server.authorize(url)))
    assert token.id_token is not None
    assert token.id_token_claims is not None
    assert token.id_token_claims["sub"] == "alice"
    assert token.id_token_claims["nonce"] == nonce
    stored = manager.store.load(manager.core.store_key)  # type: ignore[union-attr]
    assert stored.id_token_claims == token.id_token_claims  # saved with the token


def test_no_nonce_without_openid(make_manager: MakeManager, server: FakeTokenServer) -> None:
    manager = make_manager(server.authorization_code_credentials(scopes=("read",)))
    assert "nonce" not in parse_qs(urlsplit(manager.get_authorization_url()).query)


def test_a_replayed_nonce_is_refused(make_manager: MakeManager, server: FakeTokenServer) -> None:
    manager = make_manager(server.authorization_code_credentials(scopes=("openid",)))
    server.id_token_claims = {"nonce": "someone-elses"}
    with pytest.raises(IdTokenError, match="nonce") as caught:
        _sign_in(manager, server)
    assert "nonce" in caught.value.reason
    assert manager.token is None  # the tokens that came with it are not used
    assert manager.store.load(manager.core.store_key) is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://evil.example"}, "iss"),
        ({"aud": "another-client"}, "aud"),
        ({"exp": 1}, "expired"),
        ({"at_hash": "AAAA"}, "at_hash"),
    ],
)
def test_a_bad_id_token_is_a_typed_error(
    make_manager: MakeManager, server: FakeTokenServer, claims: dict[str, object], reason: str
) -> None:
    manager = make_manager(server.authorization_code_credentials(scopes=("openid",)))
    server.id_token_claims = claims
    with pytest.raises(IdTokenError, match=reason):
        _sign_in(manager, server)


def test_max_age_checks_auth_time(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager(server.authorization_code_credentials(scopes=("openid",)))
    url = manager.get_authorization_url(additional_params={"max_age": "60"})
    redirect = server.authorize(url)  # the user signs in now ...
    clock.advance(600)  # ... and the provider claims it was then
    with pytest.raises(IdTokenError, match="max_age"):
        manager.fetch_token(manager.parse_redirect(redirect))


def test_a_rotated_signing_key_is_fetched_once(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    seen: list[str] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.path)
        return server(request)

    manager = make_manager(
        server.password_credentials(scopes=("openid",)),
        http_client=httpx2.Client(transport=httpx2.MockTransport(record)),
    )
    manager.fetch_token()
    server.rotate_signing_key()
    clock.advance(120)
    assert manager.refresh_token().id_token_claims is not None
    assert seen.count("/.well-known/jwks.json") == 2


def test_refresh_keeps_the_user(make_manager: MakeManager, server: FakeTokenServer) -> None:
    manager = make_manager(server.authorization_code_credentials(scopes=("openid",)))
    first = _sign_in(manager, server)
    refreshed = manager.refresh_token()
    assert refreshed.id_token != first.id_token
    assert refreshed.id_token_claims is not None
    assert refreshed.id_token_claims["sub"] == "alice"
    server.id_token_claims = {"sub": "mallory"}
    with pytest.raises(IdTokenError, match="sub"):
        manager.refresh_token()


def test_an_id_token_needs_an_issuer_to_be_checked(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    creds = server.password_credentials(scopes=("openid",)).clone_with(issuer=None)
    with pytest.raises(IdTokenError, match="issuer="):
        make_manager(creds).fetch_token()


@pytest.mark.anyio
async def test_async_path_validates_too(make_manager: MakeManager, server: FakeTokenServer) -> None:
    manager = make_manager(
        server.authorization_code_credentials(scopes=("openid",)),
        async_http_client=httpx2.AsyncClient(transport=server.transport()),
    )
    url = await manager.aget_authorization_url()
    server.id_token_claims = {"nonce": "forged"}
    with pytest.raises(IdTokenError):
        await manager.afetch_token(manager.parse_redirect(server.authorize(url)))
    await manager._async_http_client.aclose()  # type: ignore[union-attr]
