"""The async path pools one ``httpx2.AsyncClient`` per manager, closed with it (issue 17, 7)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from keyturn.client import TokenManager
from keyturn.testing import FakeTokenServer


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch, server: FakeTokenServer) -> list[httpx2.AsyncClient]:
    """Every ``AsyncClient`` created, each wired to the fake server."""
    made: list[httpx2.AsyncClient] = []
    original = httpx2.AsyncClient.__init__

    def init(self: httpx2.AsyncClient, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("transport", server.transport())
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(httpx2.AsyncClient, "__init__", init)
    return made


def _manager(server: FakeTokenServer) -> TokenManager:
    return TokenManager(server.password_credentials(revocation_url=server.revocation_url))


@pytest.mark.anyio
async def test_one_client_for_every_call_closed_with_the_manager(
    server: FakeTokenServer, opened: list[httpx2.AsyncClient]
) -> None:
    async with _manager(server) as manager:
        await manager.afetch_token()
        await manager.arefresh_token()
        await manager.arevoke()
        assert len(opened) == 1
        assert not opened[0].is_closed
    assert opened[0].is_closed
    assert server.token_requests == 2


@pytest.mark.anyio
async def test_a_given_client_is_used_and_left_open(
    server: FakeTokenServer, opened: list[httpx2.AsyncClient]
) -> None:
    async with httpx2.AsyncClient() as given:
        manager = TokenManager(server.password_credentials(), async_http_client=given)
        await manager.afetch_token()
        await manager.aclose()
        assert opened == [given]
        assert not given.is_closed


def test_a_new_event_loop_gets_a_new_client(
    server: FakeTokenServer, opened: list[httpx2.AsyncClient]
) -> None:
    manager = _manager(server)
    asyncio.run(manager.afetch_token())
    asyncio.run(manager.afetch_token())  # the first loop is closed: its client is replaced
    assert len(opened) == 2
    asyncio.run(manager.aclose())
    assert opened[1].is_closed


@pytest.mark.anyio
async def test_a_sync_close_in_async_code_still_closes_the_pooled_client(
    server: FakeTokenServer, opened: list[httpx2.AsyncClient]
) -> None:
    manager = _manager(server)
    await manager.afetch_token()
    manager.close()  # cannot await: the event loop closes it
    for _ in range(3):
        await asyncio.sleep(0)
    assert opened[0].is_closed


def test_the_event_loop_closes_the_pool_when_it_ends(
    server: FakeTokenServer, opened: list[httpx2.AsyncClient]
) -> None:
    manager = _manager(server)
    asyncio.run(manager.afetch_token())  # and never closed by the caller
    assert opened[0].is_closed
    assert manager.token is not None
