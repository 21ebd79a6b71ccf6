"""`AsyncKeyturnClient`: Keyturn's own API over one httpx2 client.

`AsyncKeyturnClient._run` is the only method that sends; every other one
builds a `Call` with the sans-IO operations and runs it. Most methods *are* an
operation, bound by `_sends`: its signature, written once in ``*_ops.py``,
is the method's, less the endpoints the shell supplies. ``tokens.list`` sends
nothing itself: it returns a pager that fetches pages as it is iterated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, Protocol, Self, TypeVar

from keyturn.client._http import httpx2, send_async
from keyturn.client.api import client_ops, oauth_ops, token_ops
from keyturn.client.api._admin import AdminSession
from keyturn.client.api._wire import Call, Endpoints, RequestOptions, shell_method
from keyturn.client.api.models import Token, TokenPage
from keyturn.client.manager import TokenManager
from keyturn.core.clock import Clock
from keyturn.core.token import OAuthToken

__all__ = ["AsyncClients", "AsyncKeyturnClient", "AsyncTokenPager", "AsyncTokens"]

T = TypeVar("T")
P = ParamSpec("P")


class _Run(Protocol):
    """What the parts hold of their client: the one function that sends a `Call`."""

    def __call__(self, call: Call[T], /) -> Awaitable[T]: ...


class _Part(Protocol):
    """A part of the client (``tokens``, ``clients``): how it sends, and where to."""

    _run: _Run
    _ep: Endpoints


def _sends(
    op: Callable[Concatenate[Endpoints, P], Call[T]],
) -> Callable[Concatenate[_Part, P], Awaitable[T]]:
    """The method that builds ``op``'s call on the part's endpoints and runs it."""

    async def method(part: _Part, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await part._run(op(part._ep, *args, **kwargs))

    return shell_method(op, method)


def _sends_as_client(
    op: Callable[Concatenate[oauth_ops.Caller, P], Call[T]],
) -> Callable[Concatenate[AsyncKeyturnClient, P], Awaitable[T]]:
    """The same for the standard endpoints, which act as the client, with its own credentials."""

    async def method(client: AsyncKeyturnClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await client._run(op(client._session, *args, **kwargs))

    return shell_method(op, method)


def _pages(
    op: Callable[Concatenate[Endpoints, P], Callable[[str | None], Call[TokenPage]]],
) -> Callable[Concatenate[_Part, P], AsyncTokenPager]:
    """The method that makes a pager of ``op``'s pages on the part's endpoints."""

    def method(part: _Part, /, *args: P.args, **kwargs: P.kwargs) -> AsyncTokenPager:
        return AsyncTokenPager(part._run, op(part._ep, *args, **kwargs))

    return shell_method(op, method, result=AsyncTokenPager)


class AsyncTokenPager:
    """A token listing that fetches pages as it is iterated, following ``next_cursor``.

    ``async for token in pager`` yields tokens; ``pager.pages()`` yields whole
    pages; ``await pager.page(cursor)`` fetches one. Nothing is sent before.
    """

    def __init__(self, run: _Run, make: Callable[[str | None], Call[TokenPage]]) -> None:
        self._run = run
        self._make = make

    async def page(self, cursor: str | None = None) -> TokenPage:
        return await self._run(self._make(cursor))

    async def pages(self) -> AsyncIterator[TokenPage]:
        cursor: str | None = None
        while True:
            page = await self.page(cursor)
            yield page
            cursor = token_ops.next_cursor(page, cursor)
            if cursor is None:
                return

    async def __aiter__(self) -> AsyncIterator[Token]:
        async for page in self.pages():
            for token in page.items:
                yield token


class AsyncTokens:
    """``client.tokens``: Authlete- and Square-style token management."""

    def __init__(self, run: _Run, ep: Endpoints, clock: Clock) -> None:
        self._run = run
        self._ep = ep
        self._clock = clock

    list = _pages(token_ops.list_pages)
    get = _sends(token_ops.get)
    create = _sends(token_ops.create)
    update = _sends(token_ops.update)
    delete = _sends(token_ops.delete)
    revoke = _sends(token_ops.revoke)
    revoke_all = _sends(token_ops.revoke_all)
    renew = _sends(token_ops.renew)
    import_ = _sends(token_ops.import_)
    purge = _sends(token_ops.purge)

    async def reissue_id_token(
        self, refresh_token: str, *, request_options: RequestOptions | None = None
    ) -> OAuthToken:
        """A new ID token, access token and refresh token for an OpenID grant's refresh token."""
        call = token_ops.reissue_id_token(
            self._ep, self._clock, refresh_token, request_options=request_options
        )
        return await self._run(call)


class AsyncClients:
    """``client.clients``: register, change, rotate and delete clients."""

    def __init__(self, run: _Run, ep: Endpoints) -> None:
        self._run = run
        self._ep = ep

    list = _sends(client_ops.list_all)
    get = _sends(client_ops.get)
    create = _sends(client_ops.create)
    update = _sends(client_ops.update)
    delete = _sends(client_ops.delete)
    rotate_secret = _sends(client_ops.rotate_secret)
    expire_previous_secret = _sends(client_ops.expire_previous_secret)


class AsyncKeyturnClient:
    """Keyturn's own API: tokens, revocation, introspection, token and client management.

    With ``client_id`` and ``client_secret`` the admin calls carry an access token
    with the ``keyturn:admin`` scope, fetched on first use and renewed as needed;
    ``token=`` gives a ready token instead. Admin API failures raise `ApiError`
    subclasses; the token, revoke and introspect endpoints raise `OAuthError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        token: str | OAuthToken | None = None,
        timeout: float = 10.0,
        http_client: httpx2.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._session = AdminSession.create(
            base_url,
            client_id=client_id,
            client_secret=client_secret,
            token=token,
            timeout=timeout,
            clock=clock,
        )
        self._http = http_client if http_client is not None else httpx2.AsyncClient()
        self._owns_http = http_client is None
        self.tokens = AsyncTokens(self._run, self._session.endpoints, self._session.clock)
        self.clients = AsyncClients(self._run, self._session.endpoints)

    @property
    def token_manager(self) -> TokenManager | None:
        """The manager of the admin token (``None`` without client credentials)."""
        return self._session.manager

    async def _run(self, call: Call[T]) -> T:
        auth = self._session.admin_auth if call.admin else None
        return call.process(await send_async(self._http, call.request, auth=auth))

    get_token = _sends_as_client(oauth_ops.get_token)
    revoke = _sends_as_client(oauth_ops.revoke)
    introspect = _sends_as_client(oauth_ops.introspect)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()
        self._session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return self._session.describe(type(self).__name__)
