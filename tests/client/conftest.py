"""Fixtures for SDK tests: a fake clock, an in-process token server, and managers wired to both."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from keyturn.client import TokenManager
from keyturn.core.credentials import Credentials
from keyturn.testing import FakeClock, FakeTokenServer

API = "https://api.example/things"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> FakeTokenServer:
    return FakeTokenServer(clock=clock)


MakeManager = Callable[..., TokenManager]


@pytest.fixture
def make_manager(clock: FakeClock, server: FakeTokenServer) -> Iterator[MakeManager]:
    """A manager whose own calls go to the fake server; jitter off unless asked for."""
    made: list[TokenManager] = []

    def make(credentials: Credentials | None = None, **options: Any) -> TokenManager:
        options.setdefault("clock", clock)
        options.setdefault("jitter", 0.0)
        options.setdefault("rng", random.Random(1))
        options.setdefault("http_client", httpx2.Client(transport=server.transport()))
        options.setdefault("async_http_client", None)
        manager = TokenManager(credentials or server.client_credentials(), **options)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        if manager._http_client is not None:
            manager._http_client.close()
