"""Rate limits: per-client token issuance and per-client authentication failures.

An in-process token bucket: ``limit`` events per ``window`` seconds, bursts up
to ``limit``. It answers how long to wait, which becomes ``Retry-After``.
`RateLimiter` is the protocol a shared (Redis) limiter implements for a fleet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class RateLimiter(Protocol):
    async def acquire(self, key: str, limit: int, window: float) -> float | None:
        """Take one event; ``None`` if allowed, else seconds until one is."""
        ...

    async def blocked_for(self, key: str, limit: int, window: float) -> float | None:
        """Like `acquire` but takes nothing: is the bucket empty right now?"""
        ...

    async def close(self) -> None: ...


class InMemoryRateLimiter:
    _MAX_KEYS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # key -> (tokens left, time of last update)
        self._buckets: dict[str, tuple[float, float]] = {}

    def _level(self, key: str, limit: int, window: float, now: float) -> float:
        tokens, updated = self._buckets.get(key, (float(limit), now))
        return min(float(limit), tokens + (now - updated) * limit / window)

    async def acquire(self, key: str, limit: int, window: float) -> float | None:
        if limit <= 0:
            return None
        now = self._clock()
        tokens = self._level(key, limit, window, now)
        if tokens >= 1.0:
            self._store(key, tokens - 1.0, now)
            return None
        self._store(key, tokens, now)
        return (1.0 - tokens) * window / limit

    async def blocked_for(self, key: str, limit: int, window: float) -> float | None:
        if limit <= 0 or key not in self._buckets:
            return None
        tokens = self._level(key, limit, window, self._clock())
        return None if tokens >= 1.0 else (1.0 - tokens) * window / limit

    async def close(self) -> None:
        return None

    def _store(self, key: str, tokens: float, now: float) -> None:
        if len(self._buckets) >= self._MAX_KEYS and key not in self._buckets:
            self._buckets.clear()  # bounded memory; a full reset only forgives
        self._buckets[key] = (tokens, now)
