"""Tell resource servers about revoked access tokens before the tokens expire.

A JWT stays valid by signature until ``exp``; guards that opt into revocation
awareness check a shared Redis deny-list. The key format is the contract with
``keyturn.guard``: ``keyturn:revoked:{jti}`` = ``"1"``, expiring with the token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from keyturn.storage.records import TOKEN_KIND_ACCESS, TokenRecord

DENYLIST_PREFIX = "keyturn:revoked:"
log = logging.getLogger("keyturn.server")


class DenyList(Protocol):
    async def add(self, records: Sequence[TokenRecord]) -> None: ...
    async def close(self) -> None: ...


class NoDenyList:
    """No Redis configured: revocation is visible through introspection only."""

    async def add(self, records: Sequence[TokenRecord]) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisDenyList:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url)

    async def add(self, records: Sequence[TokenRecord]) -> None:
        now = int(time.time())
        live = [r for r in records if r.kind == TOKEN_KIND_ACCESS and r.expires_at > now]
        if not live:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for record in live:
                    pipe.set(DENYLIST_PREFIX + record.token_id, "1", ex=record.expires_at - now)
                await pipe.execute()
        except Exception:
            # The revocation is already durable in the database; the deny-list is
            # an accelerator. Say so loudly rather than failing the revocation.
            log.exception("could not publish %d revoked tokens to Redis", len(live))

    async def close(self) -> None:
        await self._redis.aclose()


def create_denylist(url: str | None) -> DenyList:
    return RedisDenyList(url) if url else NoDenyList()
