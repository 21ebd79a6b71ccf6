"""The requests and plain-httpx adapters run the same flow as OAuth2Auth."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import httpx2
import pytest
import requests
import requests.adapters

from keyturn.client.httpx_adapter import HttpxOAuth2Auth
from keyturn.client.requests_adapter import RequestsOAuth2Auth
from keyturn.testing import FakeTokenServer
from tests.client.conftest import API, MakeManager


class FakeServerAdapter(requests.adapters.BaseAdapter):
    """A requests transport adapter that answers from the in-process fake server."""

    def __init__(self, server: FakeTokenServer) -> None:
        super().__init__()
        self.server = server

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        body = request.body
        content = body.encode() if isinstance(body, str) else body
        if content is not None and not isinstance(content, bytes):
            content = b"".join(content)
        answer = self.server(
            httpx2.Request(
                request.method or "GET",
                request.url or "",
                headers=dict(request.headers),
                content=content,
            )
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers.update(answer.headers)
        response._content = answer.content
        response.request = request
        response.url = request.url or ""
        response.connection = self  # type: ignore[assignment]
        return response

    def close(self) -> None:
        pass


def session_for(server: FakeTokenServer) -> requests.Session:
    session = requests.Session()
    session.mount("https://", FakeServerAdapter(server))
    return session


def test_requests_adapter_fetches_caches_and_replays(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    manager = make_manager()
    auth = RequestsOAuth2Auth(manager, session=session_for(server))
    with session_for(server) as api:
        for _ in range(2):
            response = api.get(API, auth=auth)
            assert response.status_code == 200
        assert server.token_requests == 1
        server.expire_all()
        replayed = api.post(API, json={"a": 1}, auth=auth)
        assert replayed.status_code == 200
        assert replayed.history[0].status_code == 401
        assert replayed.request.headers["Authorization"] == "Bearer at-2"
        # A generator body is not replayable: the 401 is returned.
        server.expire_all()

        def stream() -> Iterator[bytes]:
            yield b"x"

        assert api.post(API, data=stream(), auth=auth).status_code == 401
    assert "s3cret" not in repr(auth)


def test_requests_adapter_token_errors_are_typed(server: FakeTokenServer) -> None:
    from keyturn.client import TransportError
    from keyturn.core.errors import InvalidClientError

    auth = RequestsOAuth2Auth(server.client_credentials(), session=session_for(server))
    server.enqueue(401, {"error": "invalid_client"})
    with session_for(server) as api, pytest.raises(InvalidClientError):
        api.get(API, auth=auth)
    refused = RequestsOAuth2Auth(
        server.client_credentials(token_url="http://127.0.0.1:9/oauth/token")
    )
    with pytest.raises(TransportError):
        requests.get(API, auth=refused, timeout=5)


def _httpx_transport(server: FakeTokenServer) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        answer = server(
            httpx2.Request(
                request.method, str(request.url), headers=request.headers, content=request.content
            )
        )
        headers: Mapping[str, str] = answer.headers
        return httpx.Response(answer.status_code, headers=headers, content=answer.content)

    return httpx.MockTransport(handler)


def test_plain_httpx_sync(make_manager: MakeManager, server: FakeTokenServer) -> None:
    auth = HttpxOAuth2Auth(make_manager())
    with httpx.Client(auth=auth, transport=_httpx_transport(server)) as client:
        assert client.get(API).status_code == 200
        server.expire_all()
        assert client.get(API).status_code == 200
    assert server.token_requests == 2


@pytest.mark.anyio
async def test_plain_httpx_async(server: FakeTokenServer) -> None:
    auth = HttpxOAuth2Auth(server.client_credentials())
    async with httpx.AsyncClient(auth=auth, transport=_httpx_transport(server)) as client:
        for _ in range(3):
            assert (await client.get(API)).status_code == 200
    assert server.token_requests == 1
