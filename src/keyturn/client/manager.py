"""`TokenManager` (alias `AuthManager`) and its httpx2 ``Auth``, `OAuth2Auth`.

Every method is two or three lines: build the core operation, run it with the
sync or the async shell. The ``a``-prefixed methods are the async variants of
the same operations, not copies of their logic. The manager's own calls
(``fetch_token()`` and friends) use its own httpx2 client; requests sent with
`OAuth2Auth` exchange tokens through the caller's client instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from keyturn.client._drivers import (
    AsyncEffects,
    Outbound,
    SyncEffects,
    async_flow,
    run_async,
    run_sync,
    sync_flow,
)
from keyturn.client._http import httpx2, send_async, send_sync
from keyturn.client.stores.base import AsyncTokenStore, TokenStore
from keyturn.client.stores.memory import MemoryTokenStore
from keyturn.core.clock import Clock, SystemClock
from keyturn.core.commands import Op, Send
from keyturn.core.credentials import Credentials
from keyturn.core.events import TokenEvent, TokenMetrics
from keyturn.core.grants import DEFAULT_LIFETIME
from keyturn.core.manager import ManagerSettings, TokenCore
from keyturn.core.revoke import RevocationResult
from keyturn.core.token import OAuthToken

__all__ = ["AuthManager", "OAuth2Auth", "TokenManager", "TokenProvider", "TokenUpdateHook"]

log = logging.getLogger("keyturn.client")
T = TypeVar("T")

TokenProvider = Callable[
    [OAuthToken | None, "TokenManager"],
    OAuthToken | Mapping[str, Any] | Awaitable[OAuthToken | Mapping[str, Any] | None] | None,
]
"""``token_provider(last_token, auth_manager) -> token``: called when the token is
missing or expired. Return a token (e.g. loaded from a database) or call
``auth_manager.fetch_token()`` / ``await auth_manager.afetch_token()``."""

TokenUpdateHook = Callable[[OAuthToken], Awaitable[None] | None]
"""``on_token_update(token)``: called with every newly obtained token, after it is
saved to the store and before any request uses it."""


class TokenManager:
    """Fetches, caches, refreshes, persists and revokes the tokens of one client."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        store: TokenStore | AsyncTokenStore | None = None,
        token_provider: TokenProvider | None = None,
        on_token_update: TokenUpdateHook | None = None,
        on_event: Callable[[TokenEvent], None] | None = None,
        leeway: float = 60.0,
        jitter: float = 0.2,
        default_lifetime: float = DEFAULT_LIFETIME,
        max_retries: int = 2,
        max_retry_wait: float = 30.0,
        clock: Clock | None = None,
        http_client: httpx2.Client | None = None,
        async_http_client: httpx2.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store: TokenStore | AsyncTokenStore = (
            store if store is not None else MemoryTokenStore()
        )
        self.token_provider = token_provider
        self.on_token_update = on_token_update
        self.on_event = on_event
        self.metrics = TokenMetrics()
        self.clock: Clock = clock or SystemClock()
        self._settings = ManagerSettings(
            leeway=leeway,
            jitter=jitter,
            default_lifetime=default_lifetime,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
        )
        self._rng = rng
        self.core = TokenCore(
            credentials,
            clock=self.clock,
            settings=self._settings,
            has_provider=token_provider is not None,
            emit=self.emit,
            rng=rng,
        )
        self._http_client = http_client
        self._owns_client = http_client is None
        self._async_http_client = async_http_client
        self._pooled: _Pooled | None = None

    # -- state ----------------------------------------------------------------

    @property
    def credentials(self) -> Credentials:
        return self.core.credentials

    @property
    def token(self) -> OAuthToken | None:
        """The token in use now (may be expired: see `is_token_expired`, `is_refresh_due`)."""
        return self.core.token

    @property
    def clock_skew(self) -> float | None:
        """Server minus local time, estimated from the last token response's ``Date``."""
        return self.core.clock_skew

    def is_token_expired(self, leeway: float = 0.0) -> bool:
        """True when there is no token, the API rejected it, or it expires within ``leeway`` s.

        "Expired" means what `OAuthToken.is_expired` means: past the token's
        lifetime. It is measured on the monotonic clock from the moment the
        token arrived, so a wall-clock jump does not change it. The manager
        renews earlier than that: see `is_refresh_due`.
        """
        return self.core.is_token_expired(leeway)

    def is_refresh_due(self) -> bool:
        """True when the next request would renew the token: it is past its refresh point.

        That point is ``leeway`` (the manager's option, default 60 s, at most half
        the lifetime) plus up to ``jitter`` of it before expiry.
        """
        return self.core.is_refresh_due()

    def set_token(self, token: OAuthToken | None) -> None:
        """Use ``token`` from now on (not saved to the store, no hooks called)."""
        self.core.set_token(token)

    def emit(self, event: TokenEvent) -> None:
        self.metrics(event)
        log.debug(
            "keyturn: %s (%s)%s", event.kind, event.grant, f" {event.error}" if event.error else ""
        )
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("keyturn: on_event hook raised")

    def clone_with(self, **changes: Any) -> Self:
        """A new manager with changed credentials (e.g. ``token=``), same hooks and store."""
        clone = type(self)(
            self.credentials.clone_with(**changes),
            store=self.store,
            token_provider=self.token_provider,
            on_token_update=self.on_token_update,
            on_event=self.on_event,
            leeway=self._settings.leeway,
            jitter=self._settings.jitter,
            default_lifetime=self._settings.default_lifetime,
            max_retries=self._settings.max_retries,
            max_retry_wait=self._settings.max_retry_wait,
            clock=self.clock,
            http_client=self._http_client if not self._owns_client else None,
            async_http_client=self._async_http_client,
            rng=self._rng,
        )
        return clone

    def auth(self) -> OAuth2Auth:
        """An httpx2 ``Auth`` for this manager: ``httpx2.Client(auth=manager.auth())``."""
        return OAuth2Auth(self)

    # -- running core operations ------------------------------------------------

    def _client(self) -> httpx2.Client:
        if self._http_client is None:
            self._http_client = httpx2.Client()
        return self._http_client

    def _send(self, cmd: Outbound) -> Any:
        if not isinstance(cmd, Send):
            raise TypeError("the manager sends token-endpoint requests only")
        return send_sync(self._client(), cmd.request)

    def run(self, op: Op[T]) -> T:
        """Run a core operation with the sync shell and this manager's client."""
        return run_sync(op, SyncEffects(self), self._send)

    async def arun(self, op: Op[T]) -> T:
        """Run a core operation with the async shell and this manager's async client."""
        client, own = await self._async_client()
        try:

            async def send(cmd: Outbound) -> Any:
                if not isinstance(cmd, Send):
                    raise TypeError("the manager sends token-endpoint requests only")
                return await send_async(client, cmd.request)

            return await run_async(op, AsyncEffects(self), send)
        finally:
            if own:
                await client.aclose()

    async def _async_client(self) -> tuple[httpx2.AsyncClient, bool]:
        """The client for this call, and whether the call must close it itself.

        Without an ``async_http_client`` the manager pools one, closed by
        `aclose`. An ``AsyncClient``'s connections belong to the event loop
        that opened them, so the pool is bound to one loop: when that loop has
        been closed (``asyncio.run`` called again) a new client replaces it,
        and a call from a second loop running at the same time gets a client
        of its own for that call only.
        """
        if self._async_http_client is not None:
            return self._async_http_client, False
        loop = _running_loop()
        pooled = self._pooled
        if pooled is not None:
            if pooled.loop is loop:
                return pooled.client, False
            if pooled.loop is not None and not pooled.loop.is_closed():
                return httpx2.AsyncClient(), True
            # Its loop is gone; the loop closed the client on the way out (_Pooled).
        client = httpx2.AsyncClient()
        keeper = _close_at_exit(client)
        await keeper.asend(None)
        self._pooled = _Pooled(client, loop, keeper)
        return client, False

    # -- the auth-manager API -----------------------------------------------------

    def get_token(self) -> OAuthToken:
        """A usable token: cached, else from the store, the provider or the grant."""
        fresh = self.core.fresh_token()
        return fresh if fresh is not None else self.run(self.core.acquire())

    async def aget_token(self) -> OAuthToken:
        fresh = self.core.fresh_token()
        return fresh if fresh is not None else await self.arun(self.core.acquire())

    def fetch_token(
        self, code: str | None = None, *, code_verifier: str | None = None
    ) -> OAuthToken:
        """A new token from the grant; with ``code``, the authorization-code exchange."""
        return self.run(self.core.fetch(code, code_verifier))

    async def afetch_token(
        self, code: str | None = None, *, code_verifier: str | None = None
    ) -> OAuthToken:
        return await self.arun(self.core.fetch(code, code_verifier))

    def refresh_token(self) -> OAuthToken:
        """Refresh now with the refresh token (or fetch anew when there is none)."""
        return self.run(self.core.refresh())

    async def arefresh_token(self) -> OAuthToken:
        return await self.arun(self.core.refresh())

    def revoke(self, *, refresh_only: bool = False) -> RevocationResult:
        """RFC 7009 logout: forget the tokens (memory and store), then revoke them.

        The refresh token goes first, then the access token unless
        ``refresh_only``. The result says what the provider did with each;
        `RevocationError` means the grant may still be alive there (the tokens
        are forgotten here all the same).
        """
        return self.run(self.core.revoke(refresh_only))

    async def arevoke(self, *, refresh_only: bool = False) -> RevocationResult:
        return await self.arun(self.core.revoke(refresh_only))

    def get_authorization_url(
        self, state: str | None = None, additional_params: Mapping[str, str] | None = None
    ) -> str:
        """Where to send the user; generates ``state`` and the PKCE verifier when not given."""
        return self.run(self.core.authorization_url(state, additional_params))

    async def aget_authorization_url(
        self, state: str | None = None, additional_params: Mapping[str, str] | None = None
    ) -> str:
        return await self.arun(self.core.authorization_url(state, additional_params))

    def parse_redirect(self, url: str) -> str:
        """The code from the redirect URL; raises `AccessDeniedError` on ``error=access_denied``."""
        return self.core.parse_redirect(url)

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Close the clients the manager opened itself (not those it was given).

        In async code use `aclose` (or ``async with manager``), which also
        closes the pooled ``AsyncClient``.
        """
        if self._owns_client and self._http_client is not None:
            self._http_client.close()
            self._http_client = None
        # Not awaitable here: dropping it lets its event loop close it (_Pooled).
        self._pooled = None

    async def aclose(self) -> None:
        pooled, self._pooled = self._pooled, None
        if pooled is not None:
            await pooled.keeper.aclose()
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"TokenManager({self.credentials!r}, store={type(self.store).__name__})"


class OAuth2Auth(httpx2.Auth):
    """``httpx2.Client(auth=OAuth2Auth(ClientCredentials(...)))`` - and every request has a token.

    Pass a `TokenManager` to share it (and its token) between clients, or
    credentials plus any `TokenManager` keyword arguments. One flow serves
    ``httpx2.Client`` and ``httpx2.AsyncClient`` (`keyturn.client._drivers`).

    If the caller's client raises while sending a token request (connection
    refused, timeout), that caller sees the client's own exception and everyone
    waiting on the same exchange gets a `keyturn.core.errors.TransportError`.
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


AuthManager = TokenManager


@dataclass(frozen=True, slots=True)
class _Pooled:
    """The manager's own ``AsyncClient``, the loop it belongs to, and its keeper.

    The keeper is an async generator that closes the client when it is closed.
    Event loops finalize the async generators they started (PEP 525): a loop
    closes an abandoned keeper when it is garbage-collected and every open one
    at shutdown (``asyncio.run``'s ``shutdown_asyncgens``). So the client is
    closed on its own loop even when the manager is only ``close()``d from
    sync code, or not at all.
    """

    client: httpx2.AsyncClient
    loop: asyncio.AbstractEventLoop | None
    keeper: AsyncGenerator[None, None]


async def _close_at_exit(client: httpx2.AsyncClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.aclose()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # another async library (trio, through anyio)
        return None
