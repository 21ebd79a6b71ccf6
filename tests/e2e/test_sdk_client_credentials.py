"""The client SDK against a real `keyturn serve` process: client credentials, sync and async."""

from __future__ import annotations

import httpx2
import pytest

from keyturn.client import ClientAuthMethod, ClientCredentials, OAuth2Auth, TokenManager
from keyturn.core.errors import InvalidClientError
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e


def _credentials(live_server: LiveServer, **options: object) -> ClientCredentials:
    client = live_server.create_client("--name", "sdk-e2e", "--scope", "read")
    return ClientCredentials(
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        scopes=("read",),
        **options,  # type: ignore[arg-type]
    )


def test_sync_sdk_gets_and_reuses_a_token(live_server: LiveServer) -> None:
    creds = _credentials(live_server, issuer=live_server.url)  # RFC 8414 discovery
    with TokenManager(creds) as manager:
        token = manager.get_token()
        assert token.token_type.lower() == "bearer"
        assert token.scope == "read"
        assert token.expires_in is not None
        assert token.expires_in > 0
        assert token.access_token.count(".") == 2  # a JWT
        assert manager.get_token() is token
        assert manager.clock_skew is not None
        assert abs(manager.clock_skew) < 5
        with httpx2.Client(auth=OAuth2Auth(manager)) as client:
            response = client.get(live_server.url + "/.well-known/oauth-authorization-server")
        assert response.request.headers["Authorization"] == f"Bearer {token.access_token}"
        assert manager.metrics.snapshot()["fetch_succeeded"] == 1


@pytest.mark.anyio
async def test_async_sdk_with_json_client_auth(live_server: LiveServer) -> None:
    creds = _credentials(
        live_server, token_url=live_server.token_url, auth_method=ClientAuthMethod.JSON
    )
    manager = TokenManager(creds)
    first = await manager.afetch_token()
    again = await manager.aget_token()
    assert again is first
    async with httpx2.AsyncClient(auth=OAuth2Auth(manager)) as client:
        response = await client.get(live_server.url + "/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    assert response.request.headers["Authorization"] == f"Bearer {first.access_token}"
    manager.close()


def test_wrong_secret_is_a_typed_provider_error(live_server: LiveServer) -> None:
    creds = _credentials(live_server, token_url=live_server.token_url)
    with (
        TokenManager(creds.clone_with(client_secret="not-the-Secret-42")) as manager,
        pytest.raises(InvalidClientError) as info,
    ):
        manager.fetch_token()
    assert info.value.status_code == 401
    assert "not-the-Secret-42" not in f"{info.value} {info.value!r}"
