"""`OAuth2Auth`: an httpx2 ``Auth`` that keeps every request authorized.

One flow (`TokenCore.request_flow`) serves ``httpx2.Client`` and
``httpx2.AsyncClient``; `sync_auth_flow` and `async_auth_flow` only run the
shared shells and read the bodies of token-endpoint responses - never the
API's own responses, so streaming keeps working. Token requests go through
the caller's client (its transport, proxies and TLS settings).

If the caller's client raises while sending a token request (connection
refused, timeout), that caller sees the client's own exception and everyone
waiting on the same exchange gets a `keyturn.core.errors.TransportError`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from types import ModuleType
from typing import Any

from keyturn.client._drivers import AsyncEffects, SyncEffects, drive_async, drive_sync
from keyturn.client._http import from_response, httpx2, is_replayable, to_request
from keyturn.client.manager import TokenManager
from keyturn.core.commands import SendApi
from keyturn.core.credentials import Credentials
from keyturn.core.token import OAuthToken

__all__ = ["OAuth2Auth", "async_flow", "sync_flow"]


def _attach(request: Any, token: OAuthToken) -> None:
    request.headers["Authorization"] = token.authorization


def sync_flow(manager: TokenManager, request: Any, lib: ModuleType) -> Generator[Any, Any, None]:
    """The sync driver, shared by the httpx2 and the plain-httpx ``Auth``."""
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
    manager: TokenManager, request: Any, lib: ModuleType
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


class OAuth2Auth(httpx2.Auth):
    """``httpx2.Client(auth=OAuth2Auth(ClientCredentials(...)))`` - and every request has a token.

    Pass a `TokenManager` to share it (and its token) between clients, or
    credentials plus any `TokenManager` keyword arguments.
    """

    def __init__(self, manager: TokenManager | Credentials, **options: Any) -> None:
        if isinstance(manager, Credentials):
            manager = TokenManager(manager, **options)
        elif options:
            raise TypeError("options are given to the TokenManager, not with one")
        self.manager = manager

    def sync_auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        return sync_flow(self.manager, request, httpx2)

    def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        return async_flow(self.manager, request, httpx2)

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        # Only reached by code that drives Auth by hand: same as the sync driver.
        return sync_flow(self.manager, request, httpx2)

    def __repr__(self) -> str:
        return f"OAuth2Auth({self.manager!r})"
