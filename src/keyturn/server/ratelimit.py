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
    """Token buckets in a dict, bounded without ever forgiving a live limit.

    A bucket that has refilled says nothing a missing one would not, so it is
    the only kind ever evicted. When ``max_keys`` buckets are all still live
    (a flood of failures from more addresses than the per-address throttle
    can hold back), a *new* key is refused as if its bucket were empty rather
    than stored: failing attempts wait, existing lockouts stay, and memory
    stays bounded. Keys under ``TRUSTED_PREFIXES`` are only ever created for
    authenticated clients, so their number is bounded by the clients table and
    they are always stored.
    """

    TRUSTED_PREFIXES = ("issue:",)

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self.max_keys = max_keys
        # key -> (tokens left, time of last update, time the bucket is full again)
        self._buckets: dict[str, tuple[float, float, float]] = {}
        self._next_sweep = 0.0
        self.refused = 0
        """New keys refused because every stored bucket was live (see class doc)."""

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, limit: int, window: float, now: float) -> float:
        entry = self._buckets.get(key)
        if entry is None:
            return float(limit)
        tokens, updated, _ = entry
        return min(float(limit), tokens + (now - updated) * limit / window)

    async def acquire(self, key: str, limit: int, window: float) -> float | None:
        if limit <= 0:
            return None
        now = self._clock()
        if key not in self._buckets and not self._room_for(key, now):
            self.refused += 1
            return window / limit
        tokens = self._level(key, limit, window, now)
        if tokens >= 1.0:
            self._store(key, tokens - 1.0, now, limit, window)
            return None
        self._store(key, tokens, now, limit, window)
        return (1.0 - tokens) * window / limit

    async def blocked_for(self, key: str, limit: int, window: float) -> float | None:
        if limit <= 0 or key not in self._buckets:
            return None
        tokens = self._level(key, limit, window, self._clock())
        return None if tokens >= 1.0 else (1.0 - tokens) * window / limit

    async def close(self) -> None:
        return None

    def _store(self, key: str, tokens: float, now: float, limit: int, window: float) -> None:
        full_at = now + (limit - tokens) * window / limit
        self._buckets[key] = (tokens, now, full_at)

    def _room_for(self, key: str, now: float) -> bool:
        if len(self._buckets) < self.max_keys or key.startswith(self.TRUSTED_PREFIXES):
            return True
        # Sweep what has refilled, at most once a second: a sweep costs a pass
        # over every bucket, which a flood must not get on every request.
        if now >= self._next_sweep:
            self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
            self._next_sweep = now + 1.0
        return len(self._buckets) < self.max_keys
