"""Token stores in Redis, for a fleet of hosts sharing one client's tokens (``keyturn[redis]``).

The lock is redis-py's own `Lock` (SET NX PX with a random owner token and a
Lua compare-and-delete release), with ``thread_local=False`` because the async
shell may take and release a sync store's lock on different threads. Waiting
for it longer than ``blocking_timeout`` raises `StoreLockTimeoutError`.
Compare-and-clear is one Lua script, so it is atomic even without the lock.
Tokens are kept without a TTL unless ``ttl`` is given: a refresh token outlives
its access token.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any

from keyturn.core.token import OAuthToken

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["AsyncRedisTokenStore", "RedisTokenStore"]

_COMPARE_AND_DELETE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if ARGV[1] == '' then redis.call('DEL', KEYS[1]) return 1 end
local t = cjson.decode(v)
if t['access_token'] == ARGV[1] and (t['refresh_token'] or '') == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def _cas_args(expected: OAuthToken | None) -> list[str]:
    if expected is None:
        return ["", ""]
    return [expected.access_token, expected.refresh_token or ""]


class _Base:
    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "keyturn:token:",
        ttl: int | None = None,
        lock_timeout: float = 60.0,
        blocking_timeout: float = 90.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self.lock_timeout = lock_timeout
        self.blocking_timeout = blocking_timeout

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _lock_name(self, key: str) -> str:
        return self.prefix + key + ":lock"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r})"


class RedisTokenStore(_Base):
    """Sync store on a ``redis.Redis`` client."""

    client: redis.Redis

    def load(self, key: str) -> OAuthToken | None:
        raw = self.client.get(self._key(key))
        return OAuthToken.from_json(raw) if raw else None

    def save(self, key: str, token: OAuthToken) -> None:
        self.client.set(self._key(key), token.to_json(), ex=self.ttl)

    def clear(self, key: str, expected: OAuthToken | None = None) -> bool:
        done = self.client.eval(_COMPARE_AND_DELETE, 1, self._key(key), *_cas_args(expected))
        return bool(done)

    def lock(self, key: str) -> AbstractContextManager[object]:
        from keyturn.client.stores._redis_locks import TokenLock

        lock: AbstractContextManager[object] = self.client.lock(
            self._lock_name(key),
            timeout=self.lock_timeout,
            blocking_timeout=self.blocking_timeout,
            thread_local=False,
            lock_class=TokenLock,
        )
        return lock


class AsyncRedisTokenStore(_Base):
    """Async store on a ``redis.asyncio.Redis`` client (use it with async clients)."""

    client: redis.asyncio.Redis

    async def aload(self, key: str) -> OAuthToken | None:
        raw = await self.client.get(self._key(key))
        return OAuthToken.from_json(raw) if raw else None

    async def asave(self, key: str, token: OAuthToken) -> None:
        await self.client.set(self._key(key), token.to_json(), ex=self.ttl)

    async def aclear(self, key: str, expected: OAuthToken | None = None) -> bool:
        done = await self.client.eval(_COMPARE_AND_DELETE, 1, self._key(key), *_cas_args(expected))
        return bool(done)

    def alock(self, key: str) -> AbstractAsyncContextManager[object]:
        from keyturn.client.stores._redis_locks import AsyncTokenLock

        lock: AbstractAsyncContextManager[object] = self.client.lock(
            self._lock_name(key),
            timeout=self.lock_timeout,
            blocking_timeout=self.blocking_timeout,
            thread_local=False,
            lock_class=AsyncTokenLock,
        )
        return lock
