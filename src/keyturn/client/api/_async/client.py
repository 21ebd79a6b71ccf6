"""`AsyncKeyturnClient`: Keyturn's own API over one httpx2 client.

`AsyncKeyturnClient._run` is the only method that sends; every other one
builds a `Call` with the sans-IO operations and runs it. ``tokens.list``
sends nothing itself: it returns a pager that fetches pages as it is iterated.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol, Self, TypeVar

from keyturn.client._http import httpx2, send_async
from keyturn.client.api import client_ops, oauth_ops, token_ops
from keyturn.client.api._admin import AdminSession
from keyturn.client.api._wire import Call, Endpoints, RequestOptions
from keyturn.client.api.models import (
    Client,
    ClientWithSecret,
    ImportResult,
    Introspection,
    IssuedToken,
    LegacyToken,
    RevokeResult,
    Token,
    TokenPage,
)
from keyturn.client.manager import TokenManager
from keyturn.core.clock import Clock
from keyturn.core.credentials import ClientAuthMethod
from keyturn.core.token import OAuthToken

__all__ = ["AsyncClients", "AsyncKeyturnClient", "AsyncTokenPager", "AsyncTokens"]

T = TypeVar("T")


class _Run(Protocol):
    """What the parts hold of their client: the one function that sends a `Call`."""

    def __call__(self, call: Call[T], /) -> Awaitable[T]: ...


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

    def list(
        self,
        *,
        client_id: str | None = None,
        subject: str | None = None,
        active: bool | None = None,
        limit: int | None = None,
        request_options: RequestOptions | None = None,
    ) -> AsyncTokenPager:
        """Tokens newest first, filtered; ``limit`` is the page size (server default 50).

        Nothing is sent here: the pager fetches the pages as it is iterated.
        """

        def make(cursor: str | None) -> Call[TokenPage]:
            return token_ops.list_page(
                self._ep,
                client_id=client_id,
                subject=subject,
                active=active,
                limit=limit,
                cursor=cursor,
                options=request_options,
            )

        return AsyncTokenPager(self._run, make)

    async def get(self, token_id: str, *, request_options: RequestOptions | None = None) -> Token:
        return await self._run(token_ops.get(self._ep, token_id, request_options))

    async def create(
        self,
        *,
        client_id: str,
        subject: str | None = None,
        scopes: Iterable[str] | str | None = None,
        audience: Iterable[str] | str | None = None,
        lifetime: int | None = None,
        grant_type: str | None = None,
        request_options: RequestOptions | None = None,
    ) -> IssuedToken:
        call = token_ops.create(
            self._ep,
            client_id=client_id,
            subject=subject,
            scopes=scopes,
            audience=audience,
            lifetime=lifetime,
            grant_type=grant_type,
            options=request_options,
        )
        return await self._run(call)

    async def update(
        self,
        token_id: str,
        *,
        scopes: Iterable[str] | str | None = None,
        expires_at: int | None = None,
        request_options: RequestOptions | None = None,
    ) -> Token:
        call = token_ops.update(
            self._ep, token_id, scopes=scopes, expires_at=expires_at, options=request_options
        )
        return await self._run(call)

    async def delete(self, token_id: str, *, request_options: RequestOptions | None = None) -> None:
        await self._run(token_ops.delete(self._ep, token_id, request_options))

    async def revoke(
        self,
        *,
        token: str | None = None,
        token_id: str | None = None,
        request_options: RequestOptions | None = None,
    ) -> RevokeResult:
        call = token_ops.revoke(self._ep, token=token, token_id=token_id, options=request_options)
        return await self._run(call)

    async def revoke_all(
        self,
        *,
        client_id: str | None = None,
        subject: str | None = None,
        access_tokens_only: bool = False,
        request_options: RequestOptions | None = None,
    ) -> RevokeResult:
        call = token_ops.revoke_all(
            self._ep,
            client_id=client_id,
            subject=subject,
            access_tokens_only=access_tokens_only,
            options=request_options,
        )
        return await self._run(call)

    async def renew(
        self,
        token_id: str,
        *,
        request_options: RequestOptions | None = None,
    ) -> IssuedToken:
        return await self._run(token_ops.renew(self._ep, token_id, request_options))

    async def import_(
        self, tokens: Iterable[LegacyToken], *, request_options: RequestOptions | None = None
    ) -> ImportResult:
        return await self._run(token_ops.import_(self._ep, tokens, request_options))

    async def reissue_id_token(
        self, refresh_token: str, *, request_options: RequestOptions | None = None
    ) -> OAuthToken:
        """A new ID token, access token and refresh token for an OpenID grant's refresh token."""
        call = token_ops.reissue_id_token(self._ep, self._clock, refresh_token, request_options)
        return await self._run(call)

    async def purge(self, *, request_options: RequestOptions | None = None) -> int:
        return await self._run(token_ops.purge(self._ep, request_options))


class AsyncClients:
    """``client.clients``: register, change, rotate and delete clients."""

    def __init__(self, run: _Run, ep: Endpoints) -> None:
        self._run = run
        self._ep = ep

    async def list(self, *, request_options: RequestOptions | None = None) -> builtins.list[Client]:
        return await self._run(client_ops.list_all(self._ep, request_options))

    async def get(self, client_id: str, *, request_options: RequestOptions | None = None) -> Client:
        return await self._run(client_ops.get(self._ep, client_id, request_options))

    async def create(
        self,
        *,
        client_id: str | None = None,
        name: str | None = None,
        is_public: bool | None = None,
        grant_types: Iterable[str] | None = None,
        scopes: Iterable[str] | str | None = None,
        audiences: Iterable[str] | str | None = None,
        redirect_uris: Iterable[str] | None = None,
        token_endpoint_auth_methods: Iterable[str] | None = None,
        access_token_lifetime: int | None = None,
        rate_limit: int | None = None,
        can_introspect: bool | None = None,
        request_options: RequestOptions | None = None,
    ) -> ClientWithSecret:
        fields = {k: v for k, v in locals().items() if k not in ("self", "request_options")}
        return await self._run(client_ops.create(self._ep, **fields, options=request_options))

    async def update(
        self,
        client_id: str,
        *,
        name: str | None = None,
        grant_types: Iterable[str] | None = None,
        scopes: Iterable[str] | str | None = None,
        audiences: Iterable[str] | str | None = None,
        redirect_uris: Iterable[str] | None = None,
        access_token_lifetime: int | None = None,
        rate_limit: int | None = None,
        can_introspect: bool | None = None,
        request_options: RequestOptions | None = None,
    ) -> Client:
        fields = {k: v for k, v in locals().items() if k not in ("self", "request_options")}
        return await self._run(client_ops.update(self._ep, **fields, options=request_options))

    async def delete(
        self,
        client_id: str,
        *,
        request_options: RequestOptions | None = None,
    ) -> None:
        await self._run(client_ops.delete(self._ep, client_id, request_options))

    async def rotate_secret(
        self,
        client_id: str,
        *,
        overlap: int | None = None,
        request_options: RequestOptions | None = None,
    ) -> ClientWithSecret:
        """A new secret (shown once); the old one works for ``overlap`` seconds more."""
        call = client_ops.rotate_secret(
            self._ep, client_id, overlap=overlap, options=request_options
        )
        return await self._run(call)

    async def expire_previous_secret(
        self, client_id: str, *, request_options: RequestOptions | None = None
    ) -> Client:
        """Stop the previous secret now (e.g. it leaked); returns the client as it is."""
        call = client_ops.expire_previous_secret(self._ep, client_id, request_options)
        return await self._run(call)


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

    async def get_token(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        auth_method: ClientAuthMethod | None = None,
        request_options: RequestOptions | None = None,
    ) -> OAuthToken:
        """A new client-credentials token (this client's own unless others are named)."""
        client_id, client_secret = self._session.own_credentials(client_id, client_secret)
        s = self._session
        call = oauth_ops.get_token(
            s.endpoints,
            s.clock,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            audience=audience,
            auth_method=auth_method,
            options=request_options,
        )
        return await self._run(call)

    async def revoke(
        self,
        token: str,
        *,
        token_type_hint: str | None = None,
        client_auth: oauth_ops.ClientAuth | None = None,
        request_options: RequestOptions | None = None,
    ) -> None:
        """RFC 7009: revoke one of this client's tokens (unknown tokens are no error)."""
        call = oauth_ops.revoke(
            self._session.endpoints,
            self._session.credentials,
            token,
            token_type_hint=token_type_hint,
            client_auth=client_auth,
            options=request_options,
        )
        await self._run(call)

    async def introspect(
        self,
        token: str,
        *,
        token_type_hint: str | None = None,
        client_auth: oauth_ops.ClientAuth | None = None,
        request_options: RequestOptions | None = None,
    ) -> Introspection:
        """RFC 7662: whether a token is active, and its claims if it is."""
        call = oauth_ops.introspect(
            self._session.endpoints,
            self._session.credentials,
            token,
            token_type_hint=token_type_hint,
            client_auth=client_auth,
            options=request_options,
        )
        return await self._run(call)

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
