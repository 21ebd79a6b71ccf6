"""The default store: a dict in this process, shared by every manager given the same instance."""

from __future__ import annotations

import threading
from collections import defaultdict

from keyturn.core.token import OAuthToken

__all__ = ["MemoryTokenStore"]


class MemoryTokenStore:
    def __init__(self) -> None:
        self._tokens: dict[str, OAuthToken] = {}
        self._mutex = threading.Lock()
        # Plain (non-reentrant) locks: one may be released by another thread,
        # which the async shell needs when it takes the lock in a worker thread.
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def load(self, key: str) -> OAuthToken | None:
        with self._mutex:
            return self._tokens.get(key)

    def save(self, key: str, token: OAuthToken) -> None:
        with self._mutex:
            self._tokens[key] = token

    def clear(self, key: str, expected: OAuthToken | None = None) -> bool:
        with self._mutex:
            current = self._tokens.get(key)
            if current is None or (expected is not None and not current.same_grant(expected)):
                return False
            del self._tokens[key]
            return True

    def lock(self, key: str) -> threading.Lock:
        with self._mutex:
            return self._locks[key]

    def __repr__(self) -> str:
        return f"MemoryTokenStore({len(self._tokens)} tokens)"
