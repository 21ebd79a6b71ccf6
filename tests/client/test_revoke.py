"""``revoke()`` is a logout that never leaves the user logged in (issue 17, item 1).

The tokens are forgotten, here and in the store, whatever the provider answers;
the refresh token is revoked first; ``unsupported_token_type`` for the access
token (RFC 7009 §2.2.1) is not a failure; the result says what the provider did.
"""

from __future__ import annotations

import httpx2
import pytest

from keyturn.client import (
    AuthorizationRequiredError,
    InvalidClientError,
    RevocationError,
    RevocationStatus,
    TokenManager,
    TransportError,
    UnsupportedTokenTypeError,
)
from keyturn.testing import FakeClock, FakeTokenServer
from tests.client.conftest import API, MakeManager


def _stored(manager: TokenManager) -> object:
    return manager.store.load(manager.core.store_key)  # type: ignore[union-attr]


@pytest.fixture
def jwt_like(clock: FakeClock) -> FakeTokenServer:
    """A provider whose access tokens cannot be revoked (as node-oidc-provider's JWTs)."""
    return FakeTokenServer(clock=clock, revoke_access_tokens=False)


def _user_manager(server: FakeTokenServer, make_manager: MakeManager) -> TokenManager:
    manager = make_manager(
        server.authorization_code_credentials(),
        http_client=httpx2.Client(transport=server.transport()),
    )
    url = manager.get_authorization_url()
    manager.fetch_token(manager.parse_redirect(server.authorize(url)))
    return manager


def test_unsupported_token_type_for_the_access_token_still_logs_out(
    jwt_like: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(jwt_like, make_manager)
    token = manager.token
    assert token is not None
    result = manager.revoke()
    assert result.refresh_token is not None
    assert result.access_token is not None
    assert result.refresh_token.status is RevocationStatus.REVOKED
    assert result.access_token.status is RevocationStatus.UNSUPPORTED
    assert isinstance(result.access_token.error, UnsupportedTokenTypeError)
    assert result.grant_ended
    assert jwt_like.revoked == [token.refresh_token]  # refresh first; the access one refused
    assert manager.token is None
    assert _stored(manager) is None
    with pytest.raises(AuthorizationRequiredError):
        manager.get_token()  # not the revoked user's token


def test_refresh_token_first_and_both_reported(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(server, make_manager)
    token = manager.token
    assert token is not None
    result = manager.revoke()
    assert server.revoked == [token.refresh_token, token.access_token]
    assert result.refresh_token is not None
    assert result.access_token is not None
    assert result.refresh_token.status is result.access_token.status is RevocationStatus.REVOKED
    assert result.grant_ended


def test_a_failed_access_revocation_is_not_fatal_once_the_refresh_token_is_revoked(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(server, make_manager)
    server.enqueue(200, {}, endpoint="revocation")  # the refresh token: fine
    server.enqueue(503, text="<html>down</html>", endpoint="revocation")
    result = manager.revoke()
    assert result.access_token is not None
    assert result.access_token.status is RevocationStatus.FAILED
    assert result.grant_ended
    assert manager.token is None
    assert _stored(manager) is None


def test_a_failed_refresh_revocation_raises_after_forgetting(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(server, make_manager)
    token = manager.token
    assert token is not None
    server.enqueue(401, {"error": "invalid_client"}, endpoint="revocation")
    with pytest.raises(RevocationError) as raised:
        manager.revoke()
    assert isinstance(raised.value.__cause__, InvalidClientError)
    result = raised.value.result
    assert result.refresh_token is not None
    assert result.access_token is not None
    assert result.refresh_token.status is RevocationStatus.FAILED
    assert result.access_token.status is RevocationStatus.REVOKED  # still tried
    assert not result.grant_ended
    assert manager.token is None
    assert _stored(manager) is None


def test_an_unreachable_provider_still_logs_out_locally(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(server, make_manager)

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    manager._http_client = httpx2.Client(transport=httpx2.MockTransport(refuse))
    with pytest.raises(RevocationError) as raised:
        manager.revoke()
    assert isinstance(raised.value.__cause__, TransportError)
    assert manager.token is None
    assert _stored(manager) is None


def test_refresh_only_leaves_the_access_token_alone(
    jwt_like: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(jwt_like, make_manager)
    token = manager.token
    assert token is not None
    result = manager.revoke(refresh_only=True)
    assert jwt_like.revoked == [token.refresh_token]
    assert result.access_token is not None
    assert result.access_token.status is RevocationStatus.SKIPPED
    assert result.grant_ended
    assert manager.token is None


def test_client_credentials_token_without_refresh_token(
    jwt_like: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = make_manager(
        jwt_like.client_credentials(revocation_url=jwt_like.revocation_url),
        http_client=httpx2.Client(transport=jwt_like.transport()),
    )
    manager.get_token()
    result = manager.revoke()  # unsupported: not an error, the token just lives on
    assert result.refresh_token is None
    assert result.access_token is not None
    assert result.access_token.status is RevocationStatus.UNSUPPORTED
    assert not result.grant_ended
    assert manager.token is None


def test_nothing_to_revoke(server: FakeTokenServer, make_manager: MakeManager) -> None:
    result = make_manager(
        server.password_credentials(revocation_url=server.revocation_url)
    ).revoke()
    assert result.refresh_token is None
    assert result.access_token is None
    assert server.revoked == []


@pytest.mark.anyio
async def test_async_revoke_forgets_on_unsupported_token_type(
    jwt_like: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(jwt_like, make_manager)
    manager._async_http_client = httpx2.AsyncClient(transport=jwt_like.transport())
    result = await manager.arevoke()
    assert result.grant_ended
    assert manager.token is None
    assert _stored(manager) is None
    async with httpx2.AsyncClient(auth=manager.auth(), transport=jwt_like.transport()) as api:
        with pytest.raises(AuthorizationRequiredError):
            await api.get(API)
