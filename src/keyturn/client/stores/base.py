"""The token-store protocol: four methods, in a sync and an async flavour.

``clear(key, expected)`` is compare-and-clear: it removes the stored token only
if it is still ``expected`` (same access and refresh token), so a process that
failed with an old refresh token never deletes the newer pair another process
saved. ``lock(key)`` serialises token exchanges for one key among everyone who
shares the store (threads, processes, hosts); the manager holds it only around
the exchange, never around an API call.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Protocol, runtime_checkable

from keyturn.core.token import OAuthToken

__all__ = ["AsyncTokenStore", "TokenStore"]


@runtime_checkable
class TokenStore(Protocol):
    def load(self, key: str) -> OAuthToken | None: ...

    def save(self, key: str, token: OAuthToken) -> None: ...

    def clear(self, key: str, expected: OAuthToken | None = None) -> bool:
        """Remove the token (only if it is still ``expected``, when given)."""
        ...

    def lock(self, key: str) -> AbstractContextManager[object]: ...


@runtime_checkable
class AsyncTokenStore(Protocol):
    async def aload(self, key: str) -> OAuthToken | None: ...

    async def asave(self, key: str, token: OAuthToken) -> None: ...

    async def aclear(self, key: str, expected: OAuthToken | None = None) -> bool: ...

    def alock(self, key: str) -> AbstractAsyncContextManager[object]: ...
