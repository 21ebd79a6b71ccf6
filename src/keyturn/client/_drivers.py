"""The thin shells that carry out the core's commands: one sync, one async.

Both walk the same `keyturn.core.commands` generator. They differ only where
the concurrency model does: how to wait for a flight (block the thread, or
park the task and let the leader wake its loop), how to sleep, and whether a
hook or store call is awaited. HTTP commands are passed *out* (yielded), so the
same shells serve the httpx2 `Auth` flow (which yields them to the user's
client) and the manager's own calls (which send them with its own client).

Every store lock a command took is released when the operation ends, however
it ends; the core cannot do that itself when its generator is being closed.

The shells ask only for an `Environment` (what `TokenManager` offers them), so
this module imports neither the manager nor the ``Auth`` classes built on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from keyturn.client._http import from_response, is_replayable, to_request
from keyturn.client.stores.base import AsyncTokenStore, TokenStore
from keyturn.core import flows
from keyturn.core.clock import Clock
from keyturn.core.commands import (
    CallProvider,
    CallUpdate,
    Command,
    Op,
    Send,
    SendApi,
    Sleep,
    StoreClear,
    StoreLoad,
    StoreLock,
    StoreSave,
    StoreUnlock,
    WaitFlight,
)
from keyturn.core.credentials import Credentials
from keyturn.core.events import EventKind, TokenEvent
from keyturn.core.flight import Flight
from keyturn.core.manager import TokenCore
from keyturn.core.token import OAuthToken

__all__ = [
    "AsyncEffects",
    "Environment",
    "SyncEffects",
    "async_flow",
    "drive_async",
    "drive_sync",
    "run_async",
    "run_sync",
    "sync_flow",
]

T = TypeVar("T")
Outbound = Send | SendApi
log = logging.getLogger("keyturn.client")


class Environment(Protocol):
    """What the shells use of their manager; `TokenManager` is the one there is.

    ``token_provider`` is called with the environment itself as its second
    argument (the manager, for the user's provider).
    """

    @property
    def core(self) -> TokenCore: ...

    @property
    def credentials(self) -> Credentials: ...

    @property
    def store(self) -> TokenStore | AsyncTokenStore: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def token_provider(self) -> Callable[[OAuthToken | None, Any], object] | None: ...

    @property
    def on_token_update(self) -> Callable[[OAuthToken], object] | None: ...

    def emit(self, event: TokenEvent) -> None: ...


def _hook_failed(manager: Environment, exc: BaseException) -> None:
    log.error("keyturn: on_token_update raised %s; the token is still used", type(exc).__name__)
    manager.emit(
        TokenEvent(EventKind.HOOK_FAILED, manager.credentials.grant_type, type(exc).__name__)
    )


@dataclass
class SyncEffects:
    """Carries out non-HTTP commands by blocking the calling thread."""

    manager: Environment
    locks: dict[str, AbstractContextManager[object]] = field(default_factory=dict)

    def _store(self) -> TokenStore:
        store = self.manager.store
        if not isinstance(store, TokenStore):
            raise TypeError(f"{type(store).__name__} is async-only: use an async client")
        return store

    def run(self, cmd: Command) -> Any:
        m = self.manager
        if isinstance(cmd, WaitFlight):
            cmd.flight.wait()
        elif isinstance(cmd, Sleep):
            m.clock.sleep(cmd.seconds)
        elif isinstance(cmd, CallProvider):
            assert m.token_provider is not None
            result = m.token_provider(cmd.last_token, m)
            if inspect.isawaitable(result):
                _discard(result)
                raise TypeError("an async token_provider needs an async client")
            return result
        elif isinstance(cmd, CallUpdate):
            try:
                result = m.on_token_update(cmd.token) if m.on_token_update else None
                if inspect.isawaitable(result):
                    _discard(result)
                    raise TypeError("an async on_token_update needs an async client")
            except Exception as exc:
                _hook_failed(m, exc)
        elif isinstance(cmd, StoreLoad):
            return self._store().load(cmd.key)
        elif isinstance(cmd, StoreSave):
            self._store().save(cmd.key, cmd.token)
        elif isinstance(cmd, StoreClear):
            return self._store().clear(cmd.key, cmd.expected)
        elif isinstance(cmd, StoreLock):
            lock = self._store().lock(cmd.key)
            lock.__enter__()
            self.locks[cmd.key] = lock
        elif isinstance(cmd, StoreUnlock):
            held = self.locks.pop(cmd.key, None)
            if held is not None:
                held.__exit__(None, None, None)
        else:  # pragma: no cover - Send/SendApi never reach here
            raise TypeError(f"unexpected command {cmd!r}")
        return None

    def release(self) -> None:
        while self.locks:
            _, held = self.locks.popitem()
            held.__exit__(None, None, None)


@dataclass
class AsyncEffects:
    """Carries out non-HTTP commands without blocking the event loop."""

    manager: Environment
    locks: dict[str, AbstractContextManager[object] | AbstractAsyncContextManager[object]] = field(
        default_factory=dict
    )

    async def run(self, cmd: Command) -> Any:
        m = self.manager
        store = m.store
        if isinstance(cmd, WaitFlight):
            await wait_flight(cmd.flight)
        elif isinstance(cmd, Sleep):
            await m.clock.asleep(cmd.seconds)
        elif isinstance(cmd, CallProvider):
            assert m.token_provider is not None
            result = m.token_provider(cmd.last_token, m)
            return await result if inspect.isawaitable(result) else result
        elif isinstance(cmd, CallUpdate):
            try:
                result = m.on_token_update(cmd.token) if m.on_token_update else None
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                _hook_failed(m, exc)
        elif isinstance(store, AsyncTokenStore):
            return await self._run_async_store(store, cmd)
        elif isinstance(cmd, StoreLock):
            lock = store.lock(cmd.key)
            # A cross-process lock may block for a whole token exchange: not on the loop.
            await anyio.to_thread.run_sync(lock.__enter__)
            self.locks[cmd.key] = lock
        elif isinstance(cmd, StoreUnlock):
            held = self.locks.pop(cmd.key, None)
            if held is not None:
                await _exit(held)
        else:
            return SyncEffects(m).run(cmd)
        return None

    async def _run_async_store(self, store: AsyncTokenStore, cmd: Command) -> Any:
        if isinstance(cmd, StoreLoad):
            return await store.aload(cmd.key)
        if isinstance(cmd, StoreSave):
            await store.asave(cmd.key, cmd.token)
        elif isinstance(cmd, StoreClear):
            return await store.aclear(cmd.key, cmd.expected)
        elif isinstance(cmd, StoreLock):
            lock = store.alock(cmd.key)
            await lock.__aenter__()
            self.locks[cmd.key] = lock
        elif isinstance(cmd, StoreUnlock):
            held = self.locks.pop(cmd.key, None)
            if held is not None:
                await _exit(held)
        return None

    async def release(self) -> None:
        while self.locks:
            _, held = self.locks.popitem()
            await _exit(held)


async def _exit(held: AbstractContextManager[object] | AbstractAsyncContextManager[object]) -> None:
    if isinstance(held, AbstractAsyncContextManager):
        await held.__aexit__(None, None, None)
    else:
        held.__exit__(None, None, None)


def _discard(awaitable: Awaitable[Any]) -> None:
    if inspect.iscoroutine(awaitable):
        awaitable.close()


async def wait_flight(flight: Flight) -> None:
    """Park this task until ``flight`` ends, without binding anything to this loop.

    The flight calls back from whichever thread finishes it; the callback only
    schedules the wake-up on this task's own loop (``call_soon_threadsafe``).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio (trio): wait in a worker thread
        await anyio.to_thread.run_sync(flight.wait)
        return
    future: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    def callback() -> None:
        # RuntimeError: that loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake)

    if flight.add_done_callback(callback):
        await future


def drive_sync(op: Op[T], effects: SyncEffects) -> Generator[Outbound, Any, T]:
    """Run ``op``: carry out local commands, yield HTTP ones, throw failures back in."""
    reply: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                cmd = op.throw(error) if error is not None else op.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                if isinstance(cmd, Send | SendApi):
                    reply = yield cmd
                else:
                    reply = effects.run(cmd)
            except Exception as exc:
                error = exc
            except BaseException as exc:
                if not isinstance(exc, GeneratorExit):
                    _abort(op, exc)  # KeyboardInterrupt: the next caller retries
                raise
    finally:
        op.close()
        effects.release()


async def drive_async(
    op: Op[Any], effects: AsyncEffects, box: list[Any]
) -> AsyncGenerator[Outbound, Any]:
    """`drive_sync` for tasks; the result goes to ``box`` (async generators cannot return)."""
    reply: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                cmd = op.throw(error) if error is not None else op.send(reply)
            except StopIteration as stop:
                box.append(stop.value)
                return
            reply, error = None, None
            try:
                if isinstance(cmd, Send | SendApi):
                    reply = yield cmd
                else:
                    reply = await effects.run(cmd)
            except Exception as exc:
                error = exc
            except BaseException as exc:
                # Cancelled here, or closed by the HTTP client because this task was
                # cancelled (not because the network failed): waiters retry, not fail.
                if not isinstance(exc, GeneratorExit):
                    _abort(op, exc)
                elif _cancelling():
                    _abort(op, asyncio.CancelledError())
                raise
    finally:
        op.close()
        await effects.release()


def _abort(op: Op[Any], exc: BaseException) -> None:
    with contextlib.suppress(BaseException):
        op.throw(exc)


def _cancelling() -> bool:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    return task is not None and task.cancelling() > 0


def run_sync(op: Op[T], effects: SyncEffects, send: Callable[[Outbound], Any]) -> T:
    """Run ``op`` to completion, sending its HTTP commands with ``send``."""
    return flows.drive(drive_sync(op, effects), send)


async def run_async(
    op: Op[T], effects: AsyncEffects, send: Callable[[Outbound], Awaitable[Any]]
) -> T:
    """`run_sync` for tasks."""
    box: list[Any] = []
    flow = drive_async(op, effects, box)
    reply: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                cmd = await (flow.athrow(error) if error is not None else flow.asend(reply))
            except StopAsyncIteration:
                return box[0]  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                reply = await send(cmd)
            except Exception as exc:
                error = exc
    finally:
        await flow.aclose()


def _attach(request: Any, token: OAuthToken) -> None:
    request.headers["Authorization"] = token.authorization


def sync_flow(manager: Environment, request: Any, lib: ModuleType) -> Generator[Any, Any, None]:
    """The httpx ``Auth`` flow (httpx2 or plain httpx, as ``lib``): attach, renew on a 401.

    It reads the bodies of token-endpoint responses only, never the API's own,
    so streaming keeps working; token requests go through the caller's client.
    """
    core = manager.core
    replayable = is_replayable(request, lib)
    token = core.fresh_token()
    if token is not None:
        # Fast path, the common case: no generator machinery unless the API says 401.
        _attach(request, token)
        response = yield request
        if response.status_code != 401:
            return
        op = core.after_401(request, token, _attach, replayable)
    else:
        op = core.request_flow(request, _attach, replayable)
    flow = drive_sync(op, SyncEffects(manager))
    reply: Any = None
    try:
        while True:
            try:
                cmd = flow.send(reply)
            except StopIteration:
                return
            if isinstance(cmd, SendApi):
                response = yield cmd.request
                reply = response.status_code
            else:
                response = yield to_request(cmd.request, lib)
                response.read()
                reply = from_response(response)
    finally:
        flow.close()


async def async_flow(
    manager: Environment, request: Any, lib: ModuleType
) -> AsyncGenerator[Any, Any]:
    """The async driver: the same flow, awaiting only where the shell must."""
    core = manager.core
    replayable = is_replayable(request, lib)
    token = core.fresh_token()
    if token is not None:
        _attach(request, token)
        response = yield request
        if response.status_code != 401:
            return
        op = core.after_401(request, token, _attach, replayable)
    else:
        op = core.request_flow(request, _attach, replayable)
    flow = drive_async(op, AsyncEffects(manager), [])
    reply: Any = None
    try:
        while True:
            try:
                cmd = await flow.asend(reply)
            except StopAsyncIteration:
                return
            if isinstance(cmd, SendApi):
                response = yield cmd.request
                reply = response.status_code
            else:
                response = yield to_request(cmd.request, lib)
                await response.aread()
                reply = from_response(response)
    finally:
        await flow.aclose()
