"""``revoke()`` is a logout that never leaves the user logged in (issue 17, item 1).

The tokens are forgotten, here and in the store, whatever the provider answers;
the refresh token is revoked first; ``unsupported_token_type`` for the access
token (RFC 7009 §2.2.1) is not a failure; the result says what the provider did.

A logout is serialized with the token exchanges of its manager: one already in
flight ends first and its token is the one revoked (it used to become current
again after the logout), and a caller asking for a token meanwhile waits, then
gets what a caller after the logout gets. The concurrent tests park one caller
on an event and let the other run until it can go no further (it waits on a
flight, asks for the store lock, or returns) before letting the first go on, so
the interleaving tested is the one that runs; ``WAIT`` only bounds a hang.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx2
import pytest

from keyturn.client import (
    AuthorizationRequiredError,
    EventKind,
    InvalidClientError,
    MemoryTokenStore,
    OAuthToken,
    RateLimitedError,
    RevocationError,
    RevocationStatus,
    TokenEvent,
    TokenManager,
    TransportError,
    UnsupportedTokenTypeError,
)
from keyturn.client._drivers import SyncEffects, drive_sync
from keyturn.core.commands import Send, WaitFlight
from keyturn.testing import FakeClock, FakeTokenServer
from tests.client.conftest import API, MakeManager

WAIT = 10.0
"""Seconds before a test stops waiting for what should happen at once: a hang guard only."""


def _stored(manager: TokenManager) -> object:
    return manager.store.load(manager.core.store_key)  # type: ignore[union-attr]


def _grant(request: httpx2.Request) -> str | None:
    return dict(parse_qsl(request.content.decode())).get("grant_type")


class _Flag:
    """An event (threading or anyio) that hooks, stores and done-callbacks set; re-armable."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self.event = factory()

    def set(self, *_: object) -> None:
        self.event.set()

    def rearm(self) -> None:
        self.event = self._factory()

    def on_event(self, event: TokenEvent) -> None:
        if event.kind is EventKind.WAITING:  # a caller joined a flight in progress
            self.event.set()


class _WatchedStore(MemoryTokenStore):
    """A memory store that reports every request for its lock (before it may block)."""

    def __init__(self, on_lock: Callable[[], None]) -> None:
        super().__init__()
        self._on_lock = on_lock

    def lock(self, key: str) -> threading.Lock:
        self._on_lock()
        return super().lock(key)


def _parking(server: FakeTokenServer, url: str, entered: Any, release: Any) -> httpx2.MockTransport:
    """The fake server, with requests to ``url`` held until ``release`` is set."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        if str(request.url).startswith(url):
            entered.set()
            assert release.wait(WAIT)
        return server(request)

    return httpx2.MockTransport(handle)


@pytest.fixture
def jwt_like(clock: FakeClock) -> FakeTokenServer:
    """A provider whose access tokens cannot be revoked (as node-oidc-provider's JWTs)."""
    return FakeTokenServer(clock=clock, revoke_access_tokens=False)


def _user_manager(
    server: FakeTokenServer, make_manager: MakeManager, **options: Any
) -> TokenManager:
    options.setdefault("http_client", httpx2.Client(transport=server.transport()))
    manager = make_manager(server.authorization_code_credentials(), **options)
    url = manager.get_authorization_url()
    manager.fetch_token(manager.parse_redirect(server.authorize(url)))
    return manager


def test_unsupported_token_type_for_the_access_token_still_logs_out(
    jwt_like: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(jwt_like, make_manager)
    token = manager.token
    assert token is not None
    result = manager.revoke()
    assert result.refresh_token is not None
    assert result.access_token is not None
    assert result.refresh_token.status is RevocationStatus.REVOKED
    assert result.access_token.status is RevocationStatus.UNSUPPORTED
    assert isinstance(result.access_token.error, UnsupportedTokenTypeError)
    assert result.grant_ended
    assert jwt_like.revoked == [token.refresh_token]  # refresh first; the access one refused
    assert manager.token is None
    assert _stored(manager) is None
    with pytest.raises(AuthorizationRequiredError):
        manager.get_token()  # not the revoked user's token


def test_refresh_token_first_and_both_reported(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(server, make_manager)
    token = manager.token
    assert token is not None
    result = manager.revoke()
    assert server.revoked == [token.refresh_token, token.access_token]
    assert result.refresh_token is not None
    assert result.access_token is not None
    assert result.refresh_token.status is result.access_token.status is RevocationStatus.REVOKED
    assert result.grant_ended


def test_a_failed_access_revocation_is_not_fatal_once_the_refresh_token_is_revoked(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(server, make_manager)
    server.enqueue(200, {}, endpoint="revocation")  # the refresh token: fine
    server.enqueue(503, text="<html>down</html>", endpoint="revocation")
    result = manager.revoke()
    assert result.access_token is not None
    assert result.access_token.status is RevocationStatus.FAILED
    assert result.grant_ended
    assert manager.token is None
    assert _stored(manager) is None


def test_a_failed_refresh_revocation_raises_after_forgetting(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(server, make_manager)
    token = manager.token
    assert token is not None
    server.enqueue(401, {"error": "invalid_client"}, endpoint="revocation")
    with pytest.raises(RevocationError) as raised:
        manager.revoke()
    assert isinstance(raised.value.__cause__, InvalidClientError)
    result = raised.value.result
    assert result.refresh_token is not None
    assert result.access_token is not None
    assert result.refresh_token.status is RevocationStatus.FAILED
    assert result.access_token.status is RevocationStatus.REVOKED  # still tried
    assert not result.grant_ended
    assert manager.token is None
    assert _stored(manager) is None


def test_an_unreachable_provider_still_logs_out_locally(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(server, make_manager)

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    manager._http_client = httpx2.Client(transport=httpx2.MockTransport(refuse))
    with pytest.raises(RevocationError) as raised:
        manager.revoke()
    assert isinstance(raised.value.__cause__, TransportError)
    assert manager.token is None
    assert _stored(manager) is None


def test_refresh_only_leaves_the_access_token_alone(
    jwt_like: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(jwt_like, make_manager)
    token = manager.token
    assert token is not None
    result = manager.revoke(refresh_only=True)
    assert jwt_like.revoked == [token.refresh_token]
    assert result.access_token is not None
    assert result.access_token.status is RevocationStatus.SKIPPED
    assert result.grant_ended
    assert manager.token is None


def test_client_credentials_token_without_refresh_token(
    jwt_like: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = make_manager(
        jwt_like.client_credentials(revocation_url=jwt_like.revocation_url),
        http_client=httpx2.Client(transport=jwt_like.transport()),
    )
    manager.get_token()
    result = manager.revoke()  # unsupported: not an error, the token just lives on
    assert result.refresh_token is None
    assert result.access_token is not None
    assert result.access_token.status is RevocationStatus.UNSUPPORTED
    assert not result.grant_ended
    assert manager.token is None


def test_nothing_to_revoke(server: FakeTokenServer, make_manager: MakeManager) -> None:
    result = make_manager(
        server.password_credentials(revocation_url=server.revocation_url)
    ).revoke()
    assert result.refresh_token is None
    assert result.access_token is None
    assert server.revoked == []


@pytest.mark.anyio
async def test_async_revoke_forgets_on_unsupported_token_type(
    jwt_like: FakeTokenServer, make_manager: MakeManager
) -> None:
    manager = _user_manager(jwt_like, make_manager)
    manager._async_http_client = httpx2.AsyncClient(transport=jwt_like.transport())
    result = await manager.arevoke()
    assert result.grant_ended
    assert manager.token is None
    assert _stored(manager) is None
    async with httpx2.AsyncClient(auth=manager.auth(), transport=jwt_like.transport()) as api:
        with pytest.raises(AuthorizationRequiredError):
            await api.get(API)


# -- logout against token exchanges in flight ------------------------------------


def _park_refreshes(server: FakeTokenServer) -> tuple[threading.Event, threading.Event]:
    """Hold refresh requests at the token endpoint: (entered, release)."""
    entered, release = threading.Event(), threading.Event()

    def hold(request: httpx2.Request) -> None:
        if _grant(request) == "refresh_token":
            entered.set()
            assert release.wait(WAIT)

    server.before_token = hold
    return entered, release


@pytest.mark.parametrize("renew", ["get_token", "refresh_token"])
def test_revoke_during_a_refresh_revokes_what_it_brings_and_keeps_it_out(
    server: FakeTokenServer, make_manager: MakeManager, clock: FakeClock, renew: str
) -> None:
    """The refresh holds the store lock and waits for the provider when revoke() starts."""
    stalled = _Flag(threading.Event)
    manager = _user_manager(
        server, make_manager, store=_WatchedStore(stalled.set), on_event=stalled.on_event
    )
    clock.advance(3600)  # expired: get_token() refreshes too
    entered, release = _park_refreshes(server)
    with ThreadPoolExecutor(2) as pool:
        try:
            refreshing = pool.submit(getattr(manager, renew))
            assert entered.wait(WAIT)
            stalled.rearm()
            revoking = pool.submit(manager.revoke)
            revoking.add_done_callback(stalled.set)
            assert stalled.event.wait(WAIT)  # revoke() went as far as it can
        finally:
            release.set()
        refreshed: OAuthToken = refreshing.result(WAIT)  # asked before the logout: served
        result = revoking.result(WAIT)
    assert manager.token is None
    assert _stored(manager) is None
    # The pair that refresh brought is the one revoked; the provider holds nothing of the grant.
    assert server.revoked == [refreshed.refresh_token, refreshed.access_token]
    assert result.grant_ended
    assert server.refresh_tokens == {}
    assert server.access_tokens == {}
    with pytest.raises(AuthorizationRequiredError):
        manager.get_token()


def test_a_refresh_not_yet_under_the_store_lock_does_not_log_the_user_back_in(
    server: FakeTokenServer,
    make_manager: MakeManager,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The refresh waits out a cooldown, store not locked yet; the provider is down for revoke().

    Before, revoke() forgot the old pair and the refresh then redeemed its
    refresh token (alive: its revocation failed) and made the new pair current.
    """
    stalled = _Flag(threading.Event)
    manager = _user_manager(server, make_manager, max_retries=0, on_event=stalled.on_event)
    clock.advance(3600)
    server.rate_limit(retry_after=5)
    with pytest.raises(RateLimitedError):
        manager.get_token()  # starts a cooldown that the next refresh waits out first
    entered, release = threading.Event(), threading.Event()
    sleep = clock.sleep

    def park(seconds: float) -> None:
        entered.set()
        assert release.wait(WAIT)
        sleep(seconds)

    monkeypatch.setattr(clock, "sleep", park)
    revoked: list[str] = []

    def provider(request: httpx2.Request) -> httpx2.Response:
        if str(request.url).startswith(server.revocation_url):
            revoked.append(dict(parse_qsl(request.content.decode()))["token"])
            return httpx2.Response(503, text="<html>down</html>")
        return server(request)

    manager._http_client = httpx2.Client(transport=httpx2.MockTransport(provider))
    with ThreadPoolExecutor(2) as pool:
        try:
            refreshing = pool.submit(manager.get_token)
            assert entered.wait(WAIT)
            revoking = pool.submit(manager.revoke)
            revoking.add_done_callback(stalled.set)
            assert stalled.event.wait(WAIT)
        finally:
            release.set()
        refreshed: OAuthToken = refreshing.result(WAIT)
        with pytest.raises(RevocationError):
            revoking.result(WAIT)
    assert manager.token is None
    assert _stored(manager) is None
    assert revoked == [refreshed.refresh_token, refreshed.access_token]  # the newest pair
    with pytest.raises(AuthorizationRequiredError):
        manager.get_token()


def _during_revoke(
    manager: TokenManager, entered: threading.Event, release: threading.Event, stalled: _Flag
) -> tuple[Future[OAuthToken], Future[Any]]:
    """Call get_token() while revoke() waits for the provider; both futures, once done."""
    with ThreadPoolExecutor(2) as pool:
        try:
            revoking = pool.submit(manager.revoke)
            assert entered.wait(WAIT)  # forgotten here; asking the provider now
            getting = pool.submit(manager.get_token)
            getting.add_done_callback(stalled.set)
            assert stalled.event.wait(WAIT)
            assert not getting.done()  # it waits for the logout instead of racing it
        finally:
            release.set()
        revoking.result(WAIT)
        getting.exception(WAIT)
    return getting, revoking


def test_get_token_during_revoke_waits_then_needs_a_new_login(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    entered, release, stalled = threading.Event(), threading.Event(), _Flag(threading.Event)
    manager = _user_manager(
        server,
        make_manager,
        http_client=httpx2.Client(
            transport=_parking(server, server.revocation_url, entered, release)
        ),
        on_event=stalled.on_event,
    )
    token = manager.token
    assert token is not None
    getting, revoking = _during_revoke(manager, entered, release, stalled)
    assert revoking.result().grant_ended
    assert isinstance(getting.exception(), AuthorizationRequiredError)
    assert server.revoked == [token.refresh_token, token.access_token]
    assert manager.token is None


def test_get_token_during_revoke_waits_then_fetches_a_token_of_its_own(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    """A client-credentials client may fetch again after a logout; not during it."""
    entered, release, stalled = threading.Event(), threading.Event(), _Flag(threading.Event)
    manager = make_manager(
        server.client_credentials(revocation_url=server.revocation_url),
        http_client=httpx2.Client(
            transport=_parking(server, server.revocation_url, entered, release)
        ),
        on_event=stalled.on_event,
    )
    old = manager.get_token()
    getting, _ = _during_revoke(manager, entered, release, stalled)
    new = getting.result()
    assert server.revoked == [old.access_token]
    assert new.access_token != old.access_token
    assert new.access_token in server.access_tokens  # fetched after the revocation
    current = manager.token
    assert current is not None
    assert current.access_token == new.access_token


@pytest.mark.anyio
async def test_async_revoke_during_a_refresh_keeps_its_token_out(
    server: FakeTokenServer, make_manager: MakeManager, clock: FakeClock
) -> None:
    """Tasks on one loop: revoke() waits for the refresh without blocking the loop."""
    entered, release, stalled = anyio.Event(), anyio.Event(), _Flag(anyio.Event)

    async def handle(request: httpx2.Request) -> httpx2.Response:
        if _grant(request) == "refresh_token":
            entered.set()
            await release.wait()
        return server(request)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handle)) as client:
        manager = _user_manager(
            server,
            make_manager,
            async_http_client=client,
            store=_WatchedStore(stalled.set),
            on_event=stalled.on_event,
        )
        clock.advance(3600)
        outcome: dict[str, Any] = {}

        async def refresh() -> None:
            outcome["refreshed"] = await manager.aget_token()

        async def revoke() -> None:
            outcome["result"] = await manager.arevoke()
            stalled.set()

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(refresh)
                await entered.wait()
                stalled.rearm()
                tasks.start_soon(revoke)
                await stalled.event.wait()
                release.set()
    refreshed: OAuthToken = outcome["refreshed"]
    assert outcome["result"].grant_ended
    assert manager.token is None
    assert _stored(manager) is None
    assert server.revoked == [refreshed.refresh_token, refreshed.access_token]
    with pytest.raises(AuthorizationRequiredError):
        await manager.aget_token()


def test_a_logout_cut_short_still_lets_its_waiters_go_on(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    """Closed mid-way (an HTTP client failing the flow): waiters retry, nobody hangs."""
    manager = _user_manager(server, make_manager)
    logout = drive_sync(manager.core.revoke(), SyncEffects(manager))
    assert isinstance(next(logout), Send)  # forgotten; the revocation request is out
    waiter = manager.core.acquire()
    wait = next(waiter)
    assert isinstance(wait, WaitFlight)
    logout.close()
    assert wait.flight.done
    assert wait.flight.retry
    waiter.close()
    assert manager.token is None
    assert _stored(manager) is None
    with pytest.raises(AuthorizationRequiredError):
        manager.get_token()


@pytest.mark.anyio
async def test_a_cancelled_async_logout_does_not_block_the_next_caller(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    entered, never = anyio.Event(), anyio.Event()

    async def handle(request: httpx2.Request) -> httpx2.Response:
        if str(request.url).startswith(server.revocation_url):
            entered.set()
            await never.wait()
        return server(request)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handle)) as client:
        manager = _user_manager(server, make_manager, async_http_client=client)
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(manager.arevoke)
                await entered.wait()
                tasks.cancel_scope.cancel()
            assert manager.token is None
            with pytest.raises(AuthorizationRequiredError):
                await manager.aget_token()


def test_revoke_from_token_provider_is_refused_not_a_deadlock(
    server: FakeTokenServer, make_manager: MakeManager
) -> None:
    """token_provider runs inside the flight a logout would wait for (and under the store lock)."""

    def provider(last: OAuthToken | None, manager: TokenManager) -> OAuthToken:
        manager.revoke()
        raise AssertionError("unreachable")

    manager = make_manager(
        server.client_credentials(revocation_url=server.revocation_url), token_provider=provider
    )
    with pytest.raises(RuntimeError, match="token_provider"):
        manager.get_token()
