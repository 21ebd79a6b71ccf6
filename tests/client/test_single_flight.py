"""Single flight across threads and asyncio tasks on several event loops."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import pytest

from keyturn.client import EventKind, TokenEvent
from keyturn.core.errors import InvalidClientError
from keyturn.testing import FakeTokenServer
from tests.client.conftest import API, MakeManager

THREADS = 50
TASKS_PER_LOOP = 100
LOOPS = 2


class Gate:
    """Holds the token endpoint until every other caller is waiting on the flight."""

    def __init__(self, waiting_needed: int) -> None:
        self.needed = waiting_needed
        self.waiting = 0
        self.cond = threading.Condition()

    def on_event(self, event: TokenEvent) -> None:
        if event.kind is EventKind.WAITING:
            with self.cond:
                self.waiting += 1
                self.cond.notify_all()

    def wait_all(self) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.waiting >= self.needed, timeout=30), (
                f"only {self.waiting} of {self.needed} callers joined the flight"
            )


def transports(
    server: FakeTokenServer, gate: Gate
) -> tuple[httpx2.MockTransport, httpx2.MockTransport]:
    def sync_handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/oauth/token":
            gate.wait_all()
        return server(request)

    async def async_handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/oauth/token":
            # Park without blocking this loop, so its other tasks can join the flight.
            await anyio.to_thread.run_sync(gate.wait_all)
        return server(request)

    return httpx2.MockTransport(sync_handler), httpx2.MockTransport(async_handler)


def run_everyone(
    auth: Any,
    sync_transport: httpx2.MockTransport,
    async_transport: httpx2.MockTransport,
    call: Callable[[Callable[[], Any]], Any],
) -> list[Any]:
    results: list[Any] = []
    lock = threading.Lock()

    def record(outcome: Any) -> None:
        with lock:
            results.append(outcome)

    def thread_main() -> None:
        with httpx2.Client(auth=auth, transport=sync_transport) as client:
            record(call(lambda: client.get(API)))

    async def loop_main() -> None:
        async with httpx2.AsyncClient(auth=auth, transport=async_transport) as client:

            async def one() -> None:
                try:
                    record(await client.get(API))
                except Exception as exc:
                    record(exc)

            await asyncio.gather(*(one() for _ in range(TASKS_PER_LOOP)))

    workers = [threading.Thread(target=thread_main) for _ in range(THREADS)]
    workers += [threading.Thread(target=asyncio.run, args=(loop_main(),)) for _ in range(LOOPS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert not worker.is_alive()
    return results


def attempt(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        return exc


def test_threads_and_tasks_on_two_loops_share_one_token_request(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    total = THREADS + LOOPS * TASKS_PER_LOOP
    gate = Gate(total - 1)
    manager = make_manager(on_event=gate.on_event)
    sync_t, async_t = transports(server, gate)
    results = run_everyone(manager.auth(), sync_t, async_t, attempt)
    assert len(results) == total
    assert all(isinstance(r, httpx2.Response) and r.status_code == 200 for r in results), [
        r for r in results if not isinstance(r, httpx2.Response)
    ][:3]
    assert {r.request.headers["Authorization"] for r in results} == {"Bearer at-1"}
    assert server.token_requests == 1
    assert manager.metrics[EventKind.WAITING] == total - 1


def test_failed_fetch_fails_every_waiter_with_the_same_error_then_retries(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    total = THREADS + LOOPS * TASKS_PER_LOOP
    gate = Gate(total - 1)
    manager = make_manager(on_event=gate.on_event)
    server.enqueue(401, {"error": "invalid_client", "error_description": "try later"})
    sync_t, async_t = transports(server, gate)
    results = run_everyone(manager.auth(), sync_t, async_t, attempt)
    assert len(results) == total
    assert all(isinstance(r, InvalidClientError) for r in results)
    assert len({id(r) for r in results}) == 1  # one error object, shared
    assert server.token_requests == 1
    # The next call tries again, and succeeds.
    gate.needed = 0
    with httpx2.Client(auth=manager.auth(), transport=sync_t) as client:
        assert client.get(API).status_code == 200
    assert server.token_requests == 2


@pytest.mark.anyio
async def test_cancelled_leader_hands_over_to_a_waiter(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    entered = anyio.Event()
    joined = anyio.Event()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/oauth/token" and not entered.is_set():
            entered.set()
            await anyio.sleep_forever()  # the leader is cancelled while here
        return server(request)

    def on_event(event: TokenEvent) -> None:
        if event.kind is EventKind.WAITING:
            joined.set()

    manager = make_manager(on_event=on_event)
    transport = httpx2.MockTransport(handler)
    results: list[httpx2.Response] = []

    async def follow(client: httpx2.AsyncClient) -> None:
        results.append(await client.get(API))

    async with httpx2.AsyncClient(auth=manager.auth(), transport=transport) as client:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as outer, anyio.create_task_group() as leader:
                leader.start_soon(client.get, API)
                await entered.wait()
                outer.start_soon(follow, client)
                await joined.wait()
                leader.cancel_scope.cancel()
    assert results[0].status_code == 200  # the waiter led a new exchange
    assert server.token_requests == 1  # the cancelled one never reached the server
