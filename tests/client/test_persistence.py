"""Rotation-safe persistence and the hooks: save before hand-out, re-read under lock, CAS clear."""

from __future__ import annotations

import httpx2
import pytest

from keyturn.client import (
    AuthorizationRequiredError,
    EventKind,
    MemoryTokenStore,
    OAuthToken,
    TokenManager,
)
from keyturn.core.errors import InvalidGrantError
from keyturn.testing import FakeClock, FakeTokenServer
from tests.client.conftest import API, MakeManager


def test_new_token_is_saved_before_it_is_handed_out(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    store = MemoryTokenStore()
    seen: list[bool] = []
    manager: TokenManager

    def on_update(token: OAuthToken) -> None:
        seen.append(store.load(manager.core.store_key) is token)

    manager = make_manager(store=store, on_token_update=on_update)
    token = manager.get_token()
    assert seen == [True]
    assert store.load(manager.core.store_key) is token


def test_refresh_without_refresh_token_keeps_the_old_one(
    make_manager: MakeManager, clock: FakeClock
) -> None:
    server = FakeTokenServer(clock=clock, rotate_refresh_tokens=False)
    manager = make_manager(
        server.password_credentials(), http_client=httpx2.Client(transport=server.transport())
    )
    first = manager.get_token()
    assert first.refresh_token == "rt-1"
    second = manager.refresh_token()
    assert second.access_token != first.access_token
    assert second.refresh_token == "rt-1"


def test_store_is_reread_under_lock_before_refreshing(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    store = MemoryTokenStore()
    creds = server.password_credentials()
    a = make_manager(creds, store=store)
    b = make_manager(creds, store=store)
    a.get_token()
    assert b.get_token().access_token == "at-1"  # adopted from the store
    assert server.token_requests == 1
    clock.advance(3600)
    rotated = b.get_token()  # b refreshes first: rt-1 is now used up
    assert rotated.refresh_token == "rt-2"
    # a must not refresh with its stale rt-1: it finds b's pair in the store.
    assert a.get_token() == rotated
    assert server.grants == {"password": 1, "refresh_token": 1}
    assert a.metrics[EventKind.STORE_HIT] == 1


def test_invalid_grant_clears_the_stored_token_then_fetches(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    store = MemoryTokenStore()
    manager = make_manager(server.password_credentials(), store=store)
    manager.get_token()
    server.refresh_tokens.clear()  # the server revoked the refresh token
    clock.advance(3600)
    token = manager.get_token()
    assert server.grants == {"password": 2, "refresh_token": 1}
    assert store.load(manager.core.store_key) == token


def test_compare_and_clear_never_removes_a_newer_pair() -> None:
    store = MemoryTokenStore()
    old = OAuthToken(access_token="a1", refresh_token="r1")
    new = OAuthToken(access_token="a2", refresh_token="r2")
    store.save("k", new)
    assert not store.clear("k", old)
    assert store.load("k") == new
    assert store.clear("k", new)
    assert store.load("k") is None


def test_authorization_code_invalid_grant_is_raised_not_refetched(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    manager = make_manager(server.authorization_code_credentials())
    code = manager.parse_redirect(server.authorize(manager.get_authorization_url()))
    manager.fetch_token(code)
    server.refresh_tokens.clear()
    clock.advance(3600)
    with pytest.raises(InvalidGrantError):
        manager.get_token()
    with pytest.raises(AuthorizationRequiredError):
        manager.get_token()  # nothing left: the user has to log in again


def test_token_provider_loads_from_a_database_else_fetches(
    make_manager: MakeManager, server: FakeTokenServer, clock: FakeClock
) -> None:
    database = {"token": make_manager().fetch_token()}  # saved by an earlier run
    calls: list[OAuthToken | None] = []

    def provider(last: OAuthToken | None, auth_manager: TokenManager) -> OAuthToken:
        calls.append(last)
        saved = database["token"]
        if not saved.is_expired(leeway=60, clock=clock):
            return saved
        return auth_manager.fetch_token()

    def on_update(token: OAuthToken) -> None:
        database["token"] = token

    manager = make_manager(token_provider=provider, on_token_update=on_update)
    with httpx2.Client(auth=manager.auth(), transport=server.transport()) as client:
        assert client.get(API).request.headers["Authorization"] == "Bearer at-1"
        assert server.token_requests == 1  # from the database, not the server
        assert database["token"].access_token == "at-1"  # not "updated": nothing new
        clock.advance(3600)
        assert client.get(API).request.headers["Authorization"] == "Bearer at-2"
    assert server.token_requests == 2
    assert calls[0] is None
    assert calls[1] is not None
    assert calls[1].access_token == "at-1"
    assert database["token"].access_token == "at-2"  # on_token_update saw the new one


@pytest.mark.anyio
async def test_async_token_provider_and_update_hook(
    make_manager: MakeManager, server: FakeTokenServer
) -> None:
    updates: list[OAuthToken] = []

    async def provider(last: OAuthToken | None, auth_manager: TokenManager) -> OAuthToken:
        return await auth_manager.afetch_token()

    async def on_update(token: OAuthToken) -> None:
        updates.append(token)

    manager = make_manager(
        token_provider=provider,
        on_token_update=on_update,
        async_http_client=httpx2.AsyncClient(transport=server.transport()),
    )
    async with httpx2.AsyncClient(auth=manager.auth(), transport=server.transport()) as client:
        assert (await client.get(API)).status_code == 200
    assert [t.access_token for t in updates] == ["at-1"]
    assert server.token_requests == 1
    # A sync client cannot drive an async provider: a clear error, not a hang.
    other = make_manager(token_provider=provider)
    with (
        httpx2.Client(auth=other.auth(), transport=server.transport()) as sync_client,
        pytest.raises(TypeError, match="async"),
    ):
        sync_client.get(API)


def test_failing_update_hook_is_reported_not_raised(make_manager: MakeManager) -> None:
    def broken(token: OAuthToken) -> None:
        raise RuntimeError("database down")

    manager = make_manager(on_token_update=broken)
    assert manager.get_token().access_token == "at-1"
    assert manager.metrics[EventKind.HOOK_FAILED] == 1
