"""Rate limits shared by every server process through Redis (GCRA, one Lua script).

The same semantics as the in-process `InMemoryRateLimiter` -- ``limit`` events
per ``window`` seconds, bursts of up to ``limit`` -- as a generic cell rate
algorithm: one key per bucket holds the theoretical arrival time, read and
written atomically in Redis with Redis's own clock, so every process of a fleet
sees one limit. If Redis cannot be reached the process falls back to its own
in-memory limiter (logged once per outage), so an outage degrades to
per-process limits rather than to no limits or to refusing every client.
"""

from __future__ import annotations

from typing import Any

from keyturn.server.ratelimit import InMemoryRateLimiter
from keyturn.server.redis_client import CircuitBreaker, connect, redis_health

# KEYS[1] bucket; ARGV: limit, window (s), consume (1/0). Returns seconds to wait, or "0".
_GCRA = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local consume = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local wait = next_tat - window - now
if wait > 0 then return tostring(wait) end
if consume == 1 then
  redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil((next_tat - now) * 1000) + 1)
end
return '0'
"""


class RedisRateLimiter:
    """GCRA in Redis, behind a circuit breaker (`keyturn.server.redis_client`).

    While the breaker is open every check goes to the in-process fallback at
    once, so a hung Redis costs one ``timeout`` per cool-down, not per request.
    """

    def __init__(
        self,
        url: str,
        fallback: InMemoryRateLimiter | None = None,
        *,
        prefix: str = "keyturn:",
        timeout: float = 0.1,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._redis: Any = connect(url, timeout)
        self._script = self._redis.register_script(_GCRA)
        self._fallback = fallback or InMemoryRateLimiter()
        self._prefix = prefix + "rl:"
        self.breaker = breaker or CircuitBreaker(redis_health())

    async def _run(self, key: str, limit: int, window: float, consume: bool) -> float | None:
        if self.breaker.allow():
            try:
                wait = float(
                    await self._script(
                        keys=[self._prefix + key], args=[limit, window, int(consume)]
                    )
                )
            except Exception as exc:
                self.breaker.failure(exc)
            else:
                self.breaker.success()
                return wait if wait > 0 else None
        if consume:
            return await self._fallback.acquire(key, limit, window)
        return await self._fallback.blocked_for(key, limit, window)

    async def acquire(self, key: str, limit: int, window: float) -> float | None:
        if limit <= 0:
            return None
        return await self._run(key, limit, window, consume=True)

    async def blocked_for(self, key: str, limit: int, window: float) -> float | None:
        if limit <= 0:
            return None
        return await self._run(key, limit, window, consume=False)

    async def close(self) -> None:
        await self._redis.aclose()
