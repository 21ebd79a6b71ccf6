"""Tell resource servers about revoked access tokens before the tokens expire.

A JWT stays valid by signature until ``exp``; guards that opt into revocation
awareness check a shared Redis deny-list. The key format is the contract with
``keyturn.guard``, kept in `keyturn.core.revocation`: ``{prefix}revoked:{jti}``
= ``"1"``, expiring with the token (``prefix`` is ``keyturn:`` unless
``KEYTURN_REDIS_PREFIX`` says otherwise).

The database is the truth and Redis a cache of it. A revocation writes its
``denylist`` row in its own transaction (storage), then `add` publishes it at
once when Redis answers. Whatever is left unpublished -- Redis was down, hung,
or the process died in between -- is published by `DenyListPublisher.run`, a
loop in every server process, within ``KEYTURN_DENYLIST_SYNC_INTERVAL`` (1 s)
of Redis answering again. The same loop notices a Redis that lost its data
(restarted without persistence, a failover): Redis's ``run_id`` changes, and
the loop republishes every unexpired revocation, then records the ``run_id``
it rebuilt (``{prefix}denylist:synced``) so the other processes need not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import anyio

from keyturn.core.revocation import revoked_key, revoked_key_prefix
from keyturn.server.redis_client import CircuitBreaker, connect, redis_health
from keyturn.storage.records import TOKEN_KIND_ACCESS, TokenRecord
from keyturn.storage.repository import Storage

log = logging.getLogger("keyturn.server")
BATCH = 1000
BACKGROUND_WORK_LIMIT = 10.0


class DenyList(Protocol):
    async def add(self, records: Sequence[TokenRecord]) -> None:
        """``records`` were just revoked (and are on the durable deny-list): publish them."""
        ...

    async def run(self) -> None:
        """Keep Redis in step with the database until cancelled."""
        ...

    async def close(self) -> None: ...


class NoDenyList:
    """No Redis configured: revocation is visible through introspection only.

    Revocations still accumulate in the ``denylist`` table, so configuring
    Redis later publishes every one that has not expired.
    """

    async def add(self, records: Sequence[TokenRecord]) -> None:
        return None

    async def run(self) -> None:
        return None

    async def close(self) -> None:
        return None


class DenyListPublisher:
    def __init__(
        self,
        url: str,
        storage: Storage,
        *,
        prefix: str = "keyturn:",
        interval: float = 1.0,
        timeout: float = 0.1,
    ) -> None:
        self._storage = storage
        # Requests publish with the request timeout; the loop, off the request
        # path, may wait longer for a large rebuild.
        self._redis: Any = connect(url, timeout)
        self._bulk: Any = connect(url, max(timeout, 2.0))
        self._keys = revoked_key_prefix(prefix)
        self._synced_key = prefix + "denylist:synced"
        self._interval = interval
        self._wake = asyncio.Event()
        self.breaker = CircuitBreaker(redis_health())
        self.backlog = 0
        """Revocations in the database not yet published (as of the last pass)."""
        self.lag = 0.0
        """Seconds since the oldest unpublished revocation was made (0 when none)."""
        self.last_rebuild: float | None = None
        """When this process last republished the whole deny-list (Unix time)."""

    def key(self, jti: str) -> str:
        return revoked_key(jti, self._keys)

    async def add(self, records: Sequence[TokenRecord]) -> None:
        now = int(time.time())
        live = [(r.token_id, r.expires_at) for r in records if _live_access(r, now)]
        if not live:
            return
        if not self.breaker.allow():
            self._wake.set()  # the loop publishes once Redis is back
            return
        try:
            await self._publish(self._redis, live, now)
        except Exception as exc:
            self.breaker.failure(exc)
            self._wake.set()
            return
        self.breaker.success()
        try:
            await self._storage.mark_published([jti for jti, _ in live], now)
        except Exception as exc:  # published; the loop will just publish it again
            log.debug("could not mark revocations published: %s", exc)

    async def run(self) -> None:
        while True:
            try:
                # Shielded: shutdown cancels this loop at its wait, never mid-query.
                with anyio.move_on_after(BACKGROUND_WORK_LIMIT, shield=True):
                    await self.sync_once()
            except Exception as exc:
                if _is_redis_error(exc):
                    self.breaker.failure(exc)
                else:  # the database: its own health logs the outage once
                    log.debug("deny-list sync failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def sync_once(self) -> None:
        """One pass: rebuild Redis if it lost its data, then publish what is pending."""
        now = int(time.time())
        await self._measure_backlog()
        run_id = await self._run_id()
        synced = await self._bulk.get(self._synced_key)
        if synced is None or synced.decode() != run_id:
            # A new Redis (restarted, failed over) or an emptied one (FLUSHALL).
            await self._rebuild(now)
            await self._bulk.set(self._synced_key, run_id)
            if await self._run_id() != run_id:
                return  # restarted while rebuilding: the next pass rebuilds again
        while True:
            pending = await self._storage.pending_denials(BATCH)
            if not pending:
                break
            await self._publish(self._bulk, pending, now)
            await self._storage.mark_published([jti for jti, _ in pending], now)
            if len(pending) < BATCH:
                break
        self.breaker.success()
        await self._measure_backlog()

    async def _measure_backlog(self) -> None:
        count, oldest = await self._storage.denylist_backlog()
        self.backlog = count
        self.lag = max(0.0, time.time() - oldest) if oldest is not None else 0.0

    async def _run_id(self) -> str:
        """Redis's ``run_id``: new at every start of the server, with or without its data."""
        return str((await self._bulk.info("server"))["run_id"])

    async def _rebuild(self, now: int) -> None:
        after = ""
        total = 0
        while True:
            page = await self._storage.live_denials(now, after, BATCH)
            if page:
                await self._publish(self._bulk, page, now)
                total += len(page)
                after = page[-1][0]
            if len(page) < BATCH:
                break
        self.last_rebuild = time.time()
        log.info("deny-list rebuilt in Redis from the database: %d revoked tokens", total)

    async def _publish(self, client: Any, entries: Sequence[tuple[str, int]], now: int) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for jti, expires_at in entries:
                if expires_at > now:
                    pipe.set(revoked_key(jti, self._keys), "1", ex=expires_at - now)
            await pipe.execute()

    async def close(self) -> None:
        await self._redis.aclose()
        await self._bulk.aclose()


def _live_access(record: TokenRecord, now: int) -> bool:
    return record.kind == TOKEN_KIND_ACCESS and record.expires_at > now


def _is_redis_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("redis") or isinstance(exc, OSError)


def create_denylist(
    url: str | None,
    storage: Storage,
    *,
    prefix: str = "keyturn:",
    interval: float = 1.0,
    timeout: float = 0.1,
) -> DenyList:
    if not url:
        return NoDenyList()
    return DenyListPublisher(url, storage, prefix=prefix, interval=interval, timeout=timeout)
