"""Stale-while-revalidate, back-pressure (429 / 5xx) and the shared cooldown, on a fake clock."""

from __future__ import annotations

import threading

import httpx2
import pytest

from keyturn.client import EventKind, RateLimitedError
from keyturn.core.errors import TemporarilyUnavailableError
from keyturn.testing import FakeClock, FakeTokenServer
from tests.client.conftest import API, MakeManager


def test_one_caller_refreshes_while_others_use_the_valid_token(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager(leeway=60)
    manager.get_token()
    clock.advance(3600 - 30)  # past the refresh point, still valid
    seen_during_refresh: list[str] = []
    other_done = threading.Event()

    def slow_refresh(request: httpx2.Request) -> None:
        def other_caller() -> None:
            with httpx2.Client(auth=manager.auth(), transport=server.transport()) as client:
                seen_during_refresh.append(client.get(API).request.headers["Authorization"])
            other_done.set()

        threading.Thread(target=other_caller).start()
        assert other_done.wait(10), "another caller was blocked by the refresh"

    server.before_token = slow_refresh
    with httpx2.Client(auth=manager.auth(), transport=server.transport()) as client:
        response = client.get(API)
    assert seen_during_refresh == ["Bearer at-1"]  # served without waiting
    assert response.request.headers["Authorization"] == "Bearer at-2"
    assert server.token_requests == 2


def test_failed_background_refresh_keeps_serving_then_retries(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    events: list[EventKind] = []
    manager = make_manager(leeway=60, on_event=lambda e: events.append(e.kind))
    first = manager.get_token()
    clock.advance(3600 - 50)
    server.enqueue(503, text="<html>maintenance</html>")
    assert manager.get_token() is first  # no exception: stale but valid
    assert EventKind.STALE_SERVED in events
    assert server.token_requests == 2  # one attempt only: no retry storm in the background
    assert manager.get_token() is first  # within the retry interval: no new attempt
    assert server.token_requests == 2
    clock.advance(6)
    assert manager.get_token().access_token == "at-2"


def test_refresh_failure_after_real_expiry_raises(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager(max_retries=0)
    manager.get_token()
    clock.advance(3600)
    server.enqueue(400, {"error": "invalid_client"})
    with pytest.raises(Exception, match="invalid_client"):
        manager.get_token()


def test_429_retry_after_is_honoured_then_succeeds(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager()
    server.rate_limit(retry_after=5)
    assert manager.get_token().access_token == "at-1"
    assert server.token_requests == 2
    assert len(clock.slept) == 1
    assert 5 <= clock.slept[0] <= 5.5  # Retry-After plus up to 10 % jitter
    assert manager.metrics[EventKind.THROTTLED] == 1


def test_bounded_retries_then_typed_rate_limited_error(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    manager = make_manager(max_retries=2)
    server.rate_limit(retry_after=3, times=3)
    with pytest.raises(RateLimitedError) as info:
        manager.get_token()
    assert server.token_requests == 3
    assert info.value.retry_after is not None
    assert 3 <= info.value.retry_after <= 3.3


def test_long_retry_after_starts_a_shared_cooldown(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager(max_retry_wait=30)
    server.rate_limit(retry_after=120)
    with pytest.raises(RateLimitedError) as first:
        manager.get_token()
    assert first.value.retry_after is not None
    assert first.value.retry_after >= 120
    # Every caller of this manager now waits out the same cooldown: no request is sent.
    with httpx2.Client(auth=manager.auth(), transport=server.transport()) as client:
        with pytest.raises(RateLimitedError) as second:
            client.get(API)
        assert server.token_requests == 1
        assert second.value.retry_after is not None
        assert second.value.retry_after <= first.value.retry_after
        clock.advance(first.value.retry_after)
        assert client.get(API).status_code == 200
    assert server.token_requests == 2


def test_repeated_5xx_backs_off_then_raises_and_next_call_retries(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager(max_retries=2)
    server.enqueue(500, {"error": "server_error"})
    server.enqueue(502, text="<html>bad gateway</html>")
    server.enqueue(503, {"error": "temporarily_unavailable"})
    with pytest.raises(TemporarilyUnavailableError) as info:
        manager.get_token()
    assert info.value.status_code == 503
    assert server.token_requests == 3
    assert len(clock.slept) == 2
    assert clock.slept[1] > clock.slept[0] * 0.9  # exponential (jittered) back-off
    # The next call first waits out the shared cooldown, then tries again.
    assert manager.get_token().access_token == "at-1"
    assert len(clock.slept) == 3


@pytest.mark.anyio
async def test_async_429_sleeps_on_the_injected_clock(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager()
    server.rate_limit(retry_after=2)
    async with httpx2.AsyncClient(auth=manager.auth(), transport=server.transport()) as client:
        assert (await client.get(API)).status_code == 200
    assert len(clock.slept) == 1
