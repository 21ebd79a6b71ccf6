"""What `KeyturnClient` and `AsyncKeyturnClient` are built from, shared by both.

The admin token comes from the SDK's own machinery: a `TokenManager` for
`ClientCredentials` with the ``keyturn:admin`` scope, attached by `OAuth2Auth`.
So it is fetched on first use, reused until it nears expiry, refreshed, and a
``401`` (the token was revoked) fetches a new one and replays the call once —
with one implementation for both shells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keyturn.client._http import httpx2
from keyturn.client.api._wire import ADMIN_SCOPE, Endpoints
from keyturn.client.auth import OAuth2Auth
from keyturn.client.manager import TokenManager
from keyturn.core.clock import Clock, SystemClock
from keyturn.core.credentials import ClientCredentials
from keyturn.core.token import OAuthToken


@dataclass(frozen=True, slots=True)
class AdminSession:
    endpoints: Endpoints
    clock: Clock
    credentials: ClientCredentials | None
    """The client's own credentials: revoke, introspect and the admin token use them."""
    manager: TokenManager | None
    admin_auth: Any
    """What authorises admin calls: `OAuth2Auth`, a fixed bearer token, or the HTTP
    client's own ``auth`` when the caller configured one and gave us neither."""

    @classmethod
    def create(
        cls,
        base_url: str,
        *,
        client_id: str | None,
        client_secret: str | None,
        token: str | OAuthToken | None,
        timeout: float,
        clock: Clock | None,
    ) -> AdminSession:
        endpoints = Endpoints(base_url, timeout)
        clock = clock or SystemClock()
        if client_secret is not None and client_id is None:
            raise ValueError("client_secret without client_id")
        initial = OAuthToken(access_token=token) if isinstance(token, str) else token
        credentials = manager = None
        admin_auth: Any = httpx2.USE_CLIENT_DEFAULT
        if client_id is not None:
            credentials = ClientCredentials(
                client_id=client_id,
                client_secret=client_secret,
                token_url=endpoints.token_url,
                scopes=(ADMIN_SCOPE,),
                timeout=timeout,
                token=initial,
            )
        if credentials is not None and credentials.client_secret:
            manager = TokenManager(credentials, clock=clock)
            admin_auth = OAuth2Auth(manager)
        elif initial is not None:
            admin_auth = _bearer(initial.access_token)
        return cls(endpoints, clock, credentials, manager, admin_auth)

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()

    def describe(self, kind: str) -> str:
        who = f", client_id={self.credentials.client_id!r}" if self.credentials else ""
        return f"{kind}({self.endpoints.base_url!r}{who})"


def _bearer(access_token: str) -> Callable[[Any], Any]:
    """httpx2 function-auth for a fixed token (no refresh: nothing to refresh it with)."""

    def attach(request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {access_token}"
        return request

    return attach
