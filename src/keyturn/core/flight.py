"""One token exchange (or logout) in progress, shared by everyone who needs its result.

Built on `threading` only, never on an event loop, so threads and asyncio tasks
on any number of loops can wait on the same flight: threads block on the event,
tasks register a callback that wakes their own loop (see
`keyturn.client._drivers`). Every waiter sees the same token or the same error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from keyturn.core.token import OAuthToken

__all__ = ["Flight"]


class Flight:
    __slots__ = ("_callbacks", "_done", "_lock", "error", "retry", "token", "waiters")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.token: OAuthToken | None = None
        self.error: BaseException | None = None
        self.retry = False
        self.waiters = 0

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def add_done_callback(self, callback: Callable[[], None]) -> bool:
        """Register ``callback``; ``False`` (not registered) if the flight is already over."""
        with self._lock:
            if self._done.is_set():
                return False
            self._callbacks.append(callback)
            return True

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def finish(
        self,
        token: OAuthToken | None = None,
        error: BaseException | None = None,
        *,
        retry: bool = False,
    ) -> None:
        """Publish the outcome once; ``retry`` tells waiters to try again themselves."""
        with self._lock:
            if self._done.is_set():
                return
            self.token, self.error, self.retry = token, error, retry
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
