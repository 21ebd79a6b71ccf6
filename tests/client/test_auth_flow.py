"""OAuth2Auth with httpx2.Client and httpx2.AsyncClient: one flow, both clients."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from keyturn.client import EventKind, OAuth2Auth
from keyturn.testing import FakeClock, FakeTokenServer
from tests.client.conftest import API, MakeManager


def test_token_fetched_once_and_reused(make_manager: MakeManager, server: FakeTokenServer) -> None:
    auth = make_manager().auth()
    with httpx2.Client(auth=auth, transport=server.transport()) as client:
        for _ in range(3):
            response = client.get(API)
            assert response.status_code == 200
            assert response.request.headers["Authorization"] == "Bearer at-1"
    assert server.token_requests == 1
    assert server.api_requests == 3


@pytest.mark.anyio
async def test_async_client_uses_the_same_flow(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    manager = make_manager()
    async with httpx2.AsyncClient(auth=manager.auth(), transport=server.transport()) as client:
        for _ in range(3):
            assert (await client.get(API)).status_code == 200
    # The same manager serves a sync client with the token the async one fetched.
    with httpx2.Client(auth=manager.auth(), transport=server.transport()) as sync_client:
        assert sync_client.get(API).status_code == 200
    assert server.token_requests == 1


def test_auth_from_credentials_and_options(server: FakeTokenServer, clock: FakeClock) -> None:
    auth = OAuth2Auth(server.client_credentials(scopes=("read",)), clock=clock)
    with httpx2.Client(auth=auth, transport=server.transport()) as client:
        assert client.get(API).status_code == 200
    assert server.last_token_request["scope"] == "read"
    assert "s3cret" not in repr(auth)
    with pytest.raises(TypeError):
        OAuth2Auth(auth.manager, clock=clock)


def test_proactive_refresh_before_expiry(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager(leeway=60)
    with httpx2.Client(auth=manager.auth(), transport=server.transport()) as client:
        client.get(API)
        clock.advance(3600 - 61)
        client.get(API)
        assert server.token_requests == 1
        clock.advance(2)  # inside the leeway: refreshed although still valid
        response = client.get(API)
        assert server.token_requests == 2
        assert response.request.headers["Authorization"] == "Bearer at-2"


def test_password_grant_refreshes_with_refresh_token(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager(server.password_credentials())
    with httpx2.Client(auth=manager.auth(), transport=server.transport()) as client:
        client.get(API)
        clock.advance(3600)
        assert client.get(API).json()["sub"] == "alice"
    assert server.grants == {"password": 1, "refresh_token": 1}


def test_expiry_follows_the_monotonic_clock(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager()
    manager.get_token()
    clock.jump_wall_clock(10 * 3600)  # wall clock jumps (NTP, VM resume): token still ours
    assert not manager.is_token_expired()
    clock.advance(3600)
    assert manager.is_token_expired()


def test_401_renews_and_replays_once(make_manager: MakeManager, server: FakeTokenServer) -> None:
    manager = make_manager()
    with httpx2.Client(auth=manager.auth(), transport=server.transport()) as client:
        client.get(API)
        server.expire_all()  # the API now rejects the cached token
        response = client.post(API, json={"a": 1})
        assert response.status_code == 200
        assert response.request.headers["Authorization"] == "Bearer at-2"
    assert server.token_requests == 2
    assert manager.metrics[EventKind.TOKEN_REJECTED] == 1


@pytest.mark.anyio
async def test_401_replay_async(make_manager: MakeManager, server: FakeTokenServer) -> None:
    manager = make_manager()
    async with httpx2.AsyncClient(auth=manager.auth(), transport=server.transport()) as client:
        await client.get(API)
        server.expire_all()
        assert (await client.get(API)).status_code == 200
    assert server.token_requests == 2


def test_streamed_body_is_not_replayed(make_manager: MakeManager, server: FakeTokenServer) -> None:
    manager = make_manager()

    def body() -> Iterator[bytes]:
        yield b"chunk"

    with httpx2.Client(auth=manager.auth(), transport=server.transport()) as client:
        client.get(API)
        server.expire_all()
        response = client.post(API, content=body())
    assert response.status_code == 401  # given back: a stream cannot be sent twice
    assert server.api_requests == 2
    assert manager.is_token_expired()  # ...but the rejected token was dropped


def test_second_401_is_returned_not_looped(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    manager = make_manager()
    transport = httpx2.MockTransport(
        lambda r: server(r) if "auth.example" in str(r.url) else httpx2.Response(401)
    )
    with httpx2.Client(auth=manager.auth(), transport=transport) as client:
        assert client.get(API).status_code == 401
    assert server.token_requests == 2


def test_api_response_is_not_read_by_the_auth(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    manager = make_manager()

    def handler(request: httpx2.Request) -> httpx2.Response:
        if "auth.example" in str(request.url):
            return server(request)
        return httpx2.Response(200, content=iter([b"streamed ", b"body"]))

    transport = httpx2.MockTransport(handler)
    with (
        httpx2.Client(auth=manager.auth(), transport=transport) as client,
        client.stream("GET", API) as response,
    ):
        assert response.status_code == 200
        assert not response.is_stream_consumed
        assert response.read() == b"streamed body"
