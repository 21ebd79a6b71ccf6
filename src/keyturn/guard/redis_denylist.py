"""The shared revocation deny-list in Redis, read side.

Contract with the Keyturn server, which writes it (`keyturn.core.revocation`):
when a token is revoked the server sets

    keyturn:revoked:{jti} = "1"    with a TTL that ends at the token's ``exp``

so the list holds only tokens that would otherwise still be valid and empties
itself. The server keeps the list in its database too and republishes it
within about a second of Redis coming back, empty or not
(the server's deny-list publisher). The guard asks ``EXISTS keyturn:revoked:{jti}``.

When Redis cannot be reached the guard has two choices, and the caller makes
it: fail closed (the default: `DenyListUnavailableError`, which the verifier
answers with 503 and ``Retry-After``), or ``fail_open=True``, which accepts
signature-valid tokens unchecked until Redis answers again (revoked tokens
pass meanwhile). Each change of state is logged once. For a revocation check
that needs no Redis at all, use `keyturn.guard.revocation.Introspection`.

Needs the ``redis`` extra (``pip install "keyturn[redis]"``); this module is the
only one of the guard that imports redis-py.
"""

from __future__ import annotations

import logging

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.backoff
import redis.retry

from keyturn.core.revocation import REVOKED_KEY_PREFIX, revoked_key
from keyturn.guard.revocation import DenyListUnavailableError

__all__ = ["REVOKED_KEY_PREFIX", "RedisDenyList", "revoked_key"]

log = logging.getLogger("keyturn.guard")


class RedisDenyList:
    """A `DenyList` backed by Redis; give a URL, or ready clients for either mode.

    From a URL, the blocking and the asyncio client are each created on first
    use, with a short socket timeout and no retries (redis-py retries ten
    times by default) so a stalled Redis fails a request fast.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        prefix: str = REVOKED_KEY_PREFIX,
        socket_timeout: float = 1.0,
        fail_open: bool = False,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise ValueError("give a Redis URL or a client")
        self._url = url
        self._client = client
        self._async_client = async_client
        self._owned: set[str] = set()
        self.prefix = prefix
        self._timeout = socket_timeout
        self.fail_open = fail_open
        self._failing = False

    def __repr__(self) -> str:
        return f"RedisDenyList(prefix={self.prefix!r})"

    def is_revoked(self, jti: str) -> bool:
        try:
            found = bool(self._sync().exists(revoked_key(jti, self.prefix)))
        except redis.RedisError as exc:
            return self._unavailable(exc)
        self._reachable()
        return found

    async def ais_revoked(self, jti: str) -> bool:
        try:
            found = bool(await self._async().exists(revoked_key(jti, self.prefix)))
        except redis.RedisError as exc:
            return self._unavailable(exc)
        self._reachable()
        return found

    def _unavailable(self, exc: redis.RedisError) -> bool:
        """Fail closed (raise, so the request gets 503), or open when asked to."""
        if not self._failing:
            self._failing = True
            log.warning(
                "Redis deny-list unreachable (%s); %s",
                type(exc).__name__,
                "accepting tokens unchecked" if self.fail_open else "answering 503",
            )
        if self.fail_open:
            return False
        raise DenyListUnavailableError(f"redis: {type(exc).__name__}: {exc}") from exc

    def _reachable(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("Redis deny-list reachable again")

    def _sync(self) -> redis.Redis:
        if self._client is None:
            if self._url is None:
                raise DenyListUnavailableError("no blocking Redis client configured")
            self._client = redis.Redis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
            )
            self._owned.add("sync")
        return self._client

    def _async(self) -> redis.asyncio.Redis:
        if self._async_client is None:
            if self._url is None:
                raise DenyListUnavailableError("no asyncio Redis client configured")
            self._async_client = redis.asyncio.Redis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0),
            )
            self._owned.add("async")
        return self._async_client

    def close(self) -> None:
        """Close the blocking client if this object created it."""
        if "sync" in self._owned and self._client is not None:
            self._client.close()
            self._client = None
            self._owned.discard("sync")

    async def aclose(self) -> None:
        """Close both clients this object created."""
        self.close()
        if "async" in self._owned and self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None
            self._owned.discard("async")
