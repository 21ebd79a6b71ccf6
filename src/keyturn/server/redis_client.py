"""Redis connections that fail fast, and a circuit breaker around them.

Redis is a cache of the database here (shared limits, the deny-list), so a
request must never wait long for it. redis-py's defaults do the opposite: a
5 s socket timeout and ten retries with exponential backoff, which made a hung
Redis add a second to every token request and six to a revocation. Clients
made here have a short timeout and no retries; the `CircuitBreaker` then skips
Redis altogether for a cool-down after a failure, so while Redis is down or
hung a request pays nothing for it, and one probe per cool-down finds out
when it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from keyturn.storage.health import ServiceHealth

log = logging.getLogger("keyturn.server")


def connect(url: str, timeout: float) -> Any:
    """An asyncio Redis client with ``timeout`` on connect and on every reply, no retries."""
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


class CircuitBreaker:
    """Closed: calls go to Redis. A failure opens it for ``cooldown`` seconds,
    during which callers skip Redis; the first call after that is the probe.

    The cool-down doubles on each failed probe up to ``max_cooldown``, so a
    long outage costs one timeout per ``max_cooldown`` seconds per process.
    State changes are logged once each through ``health``.
    """

    def __init__(
        self,
        health: ServiceHealth,
        *,
        cooldown: float = 1.0,
        max_cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health = health
        self._base = cooldown
        self._max = max_cooldown
        self._cooldown = cooldown
        self._clock = clock
        self._open_until = 0.0

    def allow(self) -> bool:
        """Whether a call may go to Redis now (closed, or the probe after a cool-down)."""
        if self._open_until == 0.0:
            return True
        now = self._clock()
        if now < self._open_until:
            return False
        self._open_until = now + self._cooldown  # one probe per cool-down
        return True

    def failure(self, exc: BaseException) -> None:
        self.health.failed(exc)
        self._open_until = self._clock() + self._cooldown
        self._cooldown = min(self._max, self._cooldown * 2)

    def success(self) -> None:
        if self._open_until:
            self._open_until = 0.0
            self._cooldown = self._base
        self.health.succeeded(write=True)

    @property
    def is_open(self) -> bool:
        return self._open_until != 0.0


def redis_health() -> ServiceHealth:
    return ServiceHealth("redis", log, retry_after=1)
