"""``client.tokens``: the admin API's token routes, and the pager of token listings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

from keyturn.client.api import token_ops
from keyturn.client.api._async._run import AsyncRun
from keyturn.client.api._wire import Call, Endpoints, RequestOptions
from keyturn.client.api.models import (
    ImportResult,
    IssuedToken,
    LegacyToken,
    RevokeResult,
    Token,
    TokenPage,
)
from keyturn.core.clock import Clock
from keyturn.core.token import OAuthToken


class AsyncTokenPager:
    """A token listing that fetches pages as it is iterated, following ``next_cursor``.

    ``async for token in pager`` yields tokens; ``pager.pages()`` yields whole
    pages; ``await pager.page(cursor)`` fetches one. Nothing is sent before.
    """

    def __init__(self, run: AsyncRun, make: Callable[[str | None], Call[TokenPage]]) -> None:
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

    def __init__(self, run: AsyncRun, ep: Endpoints, clock: Clock) -> None:
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
