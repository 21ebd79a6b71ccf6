"""The pytest plugin that ``pip install keyturn`` registers (entry point ``pytest11``).

Fixtures, each ready to use without a conftest:

* ``fake_clock`` -- a `FakeClock`;
* ``fake_token_server`` -- a `FakeTokenServer` on that clock (use its
  ``transport()`` with ``httpx2.Client``/``AsyncClient``);
* ``keyturn_server`` -- a real ``keyturn serve`` on a free loopback port with a
  temporary data directory, one per test session (needs ``keyturn[server]``).

The helpers are imported when a fixture is used, not when pytest starts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from keyturn.testing import FakeClock, FakeTokenServer
    from keyturn.testing.live import KeyturnServer


@pytest.fixture
def fake_clock() -> FakeClock:
    from keyturn.testing import FakeClock

    return FakeClock()


@pytest.fixture
def fake_token_server(fake_clock: FakeClock) -> FakeTokenServer:
    from keyturn.testing import FakeTokenServer

    return FakeTokenServer(clock=fake_clock)


@pytest.fixture(scope="session")
def keyturn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyturnServer]:
    from keyturn.testing.live import start_keyturn_server

    if importlib.util.find_spec("uvicorn") is None:
        pytest.skip('keyturn_server needs the server: pip install "keyturn[server]"')
    server = start_keyturn_server(tmp_path_factory.mktemp("keyturn-server"))
    try:
        yield server
    finally:
        server.stop()
