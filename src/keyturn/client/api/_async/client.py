"""`AsyncKeyturnClient`: Keyturn's own API over one httpx2 client.

`_run` is the only method that sends; every other one builds a `Call` with
the sans-IO operations and runs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self, TypeVar

from keyturn.client._http import httpx2, send_async
from keyturn.client.api import oauth_ops
from keyturn.client.api._admin import AdminSession
from keyturn.client.api._async.clients import AsyncClients
from keyturn.client.api._async.tokens import AsyncTokens
from keyturn.client.api._wire import Call, RequestOptions
from keyturn.client.api.models import Introspection
from keyturn.client.manager import TokenManager
from keyturn.core.clock import Clock
from keyturn.core.credentials import ClientAuthMethod
from keyturn.core.token import OAuthToken

T = TypeVar("T")


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
