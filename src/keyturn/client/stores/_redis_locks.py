"""redis-py's locks, whose give-up is Keyturn's `StoreLockTimeoutError` (not redis-py's
`LockError`), saying what to do. Imported only by the Redis stores (``keyturn[redis]``)."""

from __future__ import annotations

import redis.asyncio.lock
import redis.lock

from keyturn.core.errors import StoreLockTimeoutError

__all__ = ["AsyncTokenLock", "TokenLock"]


def _timed_out(name: object, waited: float | None) -> StoreLockTimeoutError:
    shown = bytes(name).decode(errors="replace") if isinstance(name, bytes | memoryview) else name
    return StoreLockTimeoutError(
        f"waited {waited or 0:g} s for the token lock {shown!r} in Redis, held by another "
        "process or thread fetching the same token; retry, or raise the store's "
        "blocking_timeout=..."
    )


class TokenLock(redis.lock.Lock):
    def __enter__(self) -> TokenLock:
        if self.acquire():
            return self
        raise _timed_out(self.name, self.blocking_timeout)


class AsyncTokenLock(redis.asyncio.lock.Lock):
    async def __aenter__(self) -> AsyncTokenLock:
        if await self.acquire():
            return self
        raise _timed_out(self.name, self.blocking_timeout)
