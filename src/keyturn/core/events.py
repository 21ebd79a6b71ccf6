"""What the token manager reports: events for hooks and logs, counters for metrics.

Events carry the grant and the error *code or class name* only - never a token,
secret or response body - so they are safe to log and export.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["EventKind", "TokenEvent", "TokenMetrics"]


class EventKind(StrEnum):
    FETCH_STARTED = "fetch_started"
    FETCH_SUCCEEDED = "fetch_succeeded"
    FETCH_FAILED = "fetch_failed"
    REFRESH_STARTED = "refresh_started"
    REFRESH_SUCCEEDED = "refresh_succeeded"
    REFRESH_FAILED = "refresh_failed"
    THROTTLED = "throttled"
    """The token endpoint said 429 (or kept failing with 5xx): a shared cooldown began."""
    STALE_SERVED = "stale_served"
    """A background refresh failed; the still-valid token keeps being used."""
    STORE_HIT = "store_hit"
    """A token another process (or an earlier run) saved was adopted."""
    TOKEN_REJECTED = "token_rejected"
    """The API answered 401 to the current token, which was then invalidated."""
    WAITING = "waiting"
    """A caller joined a token exchange already in flight instead of starting one."""
    HOOK_FAILED = "hook_failed"


@dataclass(frozen=True, slots=True)
class TokenEvent:
    kind: EventKind
    grant: str
    error: str | None = None
    retry_after: float | None = None


class TokenMetrics:
    """Thread-safe counts of events; pass it as ``on_event`` or read ``manager.metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def __call__(self, event: TokenEvent) -> None:
        with self._lock:
            self._counts[event.kind.value] += 1

    def snapshot(self) -> dict[str, int]:
        """Counts by event kind, e.g. ``{"fetch_succeeded": 3, "throttled": 1}``."""
        with self._lock:
            return dict(self._counts)

    def __getitem__(self, kind: EventKind | str) -> int:
        with self._lock:
            return self._counts[str(kind)]
