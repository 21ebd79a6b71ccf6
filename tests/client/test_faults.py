"""Bad answers and network faults: typed errors, the last good token kept, no secrets leaked."""

from __future__ import annotations

import logging

import httpx2
import pytest

from keyturn.client import ClientCredentials, OAuthToken, TokenManager, TransportError
from keyturn.core.errors import InvalidClientError, InvalidResponseError
from keyturn.testing import FakeClock, FakeTokenServer
from keyturn.testing.ports import closed_port
from tests.client.conftest import API, MakeManager


@pytest.mark.parametrize(
    ("status", "kwargs", "error"),
    [
        (200, {"text": "<html>login</html>"}, InvalidResponseError),
        (200, {"json_body": {"token_type": "Bearer"}}, InvalidResponseError),
        (502, {"text": "<html>Bad Gateway</html>"}, InvalidResponseError),
        (401, {"json_body": {"error": "invalid_client"}}, InvalidClientError),
    ],
)
def test_bad_answers_are_typed_and_keep_the_last_good_token(
    make_manager: MakeManager,
    server: FakeTokenServer,
    status: int,
    kwargs: dict[str, object],
    error: type[Exception],
) -> None:
    manager = make_manager(max_retries=0)
    good = manager.get_token()
    server.enqueue(status, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(error):
        manager.refresh_token()
    assert manager.token is good
    assert not manager.is_token_expired()


def test_connection_refused_is_a_transport_error(clock: FakeClock) -> None:
    creds = ClientCredentials(
        client_id="c", client_secret="s", token_url=f"http://127.0.0.1:{closed_port()}/token"
    )
    with TokenManager(creds, clock=clock) as manager, pytest.raises(TransportError) as info:
        manager.fetch_token()
    assert "POST http://127.0.0.1" in str(info.value)


@pytest.mark.anyio
async def test_timeout_is_a_transport_error_async(clock: FakeClock) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("too slow", request=request)

    manager = TokenManager(
        FakeTokenServer().client_credentials(),
        clock=clock,
        async_http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    with pytest.raises(TransportError, match="ReadTimeout"):
        await manager.afetch_token()


def test_network_failure_inside_the_auth_flow_keeps_the_good_token(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager()
    fail = {"on": False}

    def handler(request: httpx2.Request) -> httpx2.Response:
        if fail["on"] and request.url.path == "/oauth/token":
            raise httpx2.ConnectError("refused", request=request)
        return server(request)

    with httpx2.Client(auth=manager.auth(), transport=httpx2.MockTransport(handler)) as client:
        client.get(API)
        good = manager.token
        assert good is not None
        clock.advance(3600 - 30)
        fail["on"] = True
        # Past the refresh point the refresh request itself fails in the client: the
        # caller that sent it sees its client's own error (httpx closes the auth flow,
        # it cannot be caught there), and the still-valid token stays in place.
        with pytest.raises(httpx2.ConnectError):
            client.get(API)
        assert manager.token is good
        assert client.get(API).request.headers["Authorization"] == f"Bearer {good.access_token}"
        fail["on"] = False
        assert client.get(API).status_code == 200


def test_secrets_never_in_repr_logs_or_errors(
    make_manager: MakeManager,
    server: FakeTokenServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = server.password_credentials()
    manager = make_manager(creds, max_retries=0)
    with httpx2.Client(auth=manager.auth(), transport=server.transport()) as client:
        client.get(API)
        clock.advance(3600 - 30)
        server.enqueue(500, {"error": "server_error"})
        client.get(API)  # background refresh fails: logged
        server.enqueue(401, {"error": "invalid_client", "error_description": "bad"})
        clock.advance(60)
        with pytest.raises(InvalidClientError) as info:
            client.get(API)
    token = manager.token
    assert isinstance(token, OAuthToken)
    secrets = [creds.client_secret, creds.password, token.access_token, token.refresh_token]
    texts = [
        caplog.text,
        repr(manager),
        repr(manager.auth()),
        repr(creds),
        repr(token),
        str(info.value),
        repr(info.value),
        repr(manager.store),
    ]
    assert "background token refresh failed" in caplog.text
    for secret in secrets:
        assert secret
        for text in texts:
            assert secret not in text
