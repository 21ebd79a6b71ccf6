"""`HttpxOAuth2Auth`: the same flow for users still on plain ``httpx`` (``keyturn[httpx]``).

httpx and httpx2 share their ``Auth`` protocol, so this class only passes the
``httpx`` module to the shared drivers; there is no second implementation.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx

from keyturn.client.auth import async_flow, sync_flow
from keyturn.client.manager import TokenManager
from keyturn.core.credentials import Credentials

__all__ = ["HttpxOAuth2Auth"]


class HttpxOAuth2Auth(httpx.Auth):
    """``httpx.Client(auth=HttpxOAuth2Auth(credentials_or_manager))``."""

    def __init__(self, manager: TokenManager | Credentials, **options: Any) -> None:
        self.manager = (
            manager if isinstance(manager, TokenManager) else TokenManager(manager, **options)
        )

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        return sync_flow(self.manager, request, httpx)

    def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        return async_flow(self.manager, request, httpx)

    def __repr__(self) -> str:
        return f"HttpxOAuth2Auth({self.manager!r})"
