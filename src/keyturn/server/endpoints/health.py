"""``GET /healthz`` and ``GET /readyz``: the probes of a load balancer or an orchestrator.

``/healthz`` answers that the process runs (liveness: restart it if not) and
does no I/O, so a slow database never gets a live process killed.
``/readyz`` answers whether this process can issue tokens now (readiness: send
it traffic or not): the database answers, its schema is at this version's
migration head, an active signing key is loaded, and Redis answers when one is
configured (unless ``KEYTURN_READY_REQUIRES_REDIS=false``: then an unreachable
Redis is reported but the process stays ready). Not ready is ``503`` with
``Retry-After`` and the checks that failed by name.

Both are unauthenticated, so they say nothing about the configuration: no URL,
host, version or exception text, only fixed words per check. ``/readyz`` costs
at most one round trip per dependency, and its answer is kept for
`READY_TTL` seconds with one check in flight at a time, so a balancer polling
many times a second (or many balancers) costs one check a second per process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from keyturn.server.context import ServerContext
from keyturn.server.redis_client import connect
from keyturn.server.responses import json_response
from keyturn.storage.database import head_revision, schema_revisions
from keyturn.storage.health import database_fault, describe

log = logging.getLogger("keyturn.server")

READY_TTL = 1.0
"""Seconds a readiness answer is reused."""
DATABASE_TIMEOUT = 2.0
"""Seconds the database check may take; a balancer's check timeout is usually 2-5 s."""
REDIS_TIMEOUT_CAP = 1.0
"""Upper bound on the Redis check, name resolution included (its sockets time out sooner)."""
RETRY_AFTER = "1"

OK = "ok"
UNREACHABLE = "unreachable"
ERROR = "error"
NOT_AT_HEAD = "not at head"
UNKNOWN = "unknown"
NO_ACTIVE_KEY = "no active key"


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    readiness: Readiness = request.app.state.readiness
    ready, checks = await readiness.answer()
    if ready:
        return json_response({"status": "ready", "checks": checks})
    return json_response(
        {"status": "not ready", "checks": checks}, 503, {"Retry-After": RETRY_AFTER}
    )


class Readiness:
    """The checks behind ``/readyz``, their last answer, and the Redis client they use.

    Once the schema has been seen at the head, that is remembered (a schema
    does not go back by itself) and the database check becomes a bare
    ``SELECT 1``; before, reading the schema version is the round trip.
    """

    def __init__(
        self,
        ctx: ServerContext,
        *,
        ttl: float = READY_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._ttl = ttl
        self._clock = clock
        settings = ctx.settings
        self._redis: Any = (
            connect(settings.redis_url, settings.redis_timeout) if settings.redis_url else None
        )
        self._at_head = False
        self._answer: tuple[bool, dict[str, str]] | None = None
        self._answered_at = float("-inf")
        self._lock = anyio.Lock()

    async def answer(self) -> tuple[bool, dict[str, str]]:
        """``(ready, checks)``, from the last `READY_TTL` seconds or checked now."""
        if self._answer is not None and self._clock() - self._answered_at < self._ttl:
            return self._answer
        async with self._lock:  # concurrent probes wait for the one check in flight
            if self._answer is not None and self._clock() - self._answered_at < self._ttl:
                return self._answer
            checks = await self.check()
            optional = set() if self._ctx.settings.ready_requires_redis else {"redis"}
            ready = all(v == OK for k, v in checks.items() if k not in optional)
            self._answer = (ready, checks)
            self._answered_at = self._clock()
            return self._answer

    async def check(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._check_database, checks)
            if self._redis is not None:
                tasks.start_soon(self._check_redis, checks)
        statuses = self._ctx.keyring.loaded_statuses()
        checks["signing_key"] = OK if any(s.state == "active" for s in statuses) else NO_ACTIVE_KEY
        return {name: checks[name] for name in sorted(checks)}

    async def _check_database(self, checks: dict[str, str]) -> None:
        storage = self._ctx.storage
        try:
            with anyio.fail_after(DATABASE_TIMEOUT):
                if self._at_head:
                    await storage.probe()
                else:
                    self._at_head = await schema_revisions(storage.engine) == [head_revision()]
        except Exception as exc:
            checks["database"] = self._failure(exc)
            checks["migrations"] = OK if self._at_head else UNKNOWN
            return
        checks["database"] = OK
        checks["migrations"] = OK if self._at_head else NOT_AT_HEAD

    async def _check_redis(self, checks: dict[str, str]) -> None:
        try:
            with anyio.fail_after(REDIS_TIMEOUT_CAP):
                await self._redis.ping()
        except Exception:
            checks["redis"] = UNREACHABLE
            return
        checks["redis"] = OK

    @staticmethod
    def _failure(exc: Exception) -> str:
        if isinstance(exc, TimeoutError) or database_fault(exc) is not None:
            return UNREACHABLE  # an outage: the storage's health logs it once
        # Not an outage but a bug: say so in the log (at most once per TTL), not in the answer.
        log.warning("readiness: the database check failed: %s", describe(exc))
        return ERROR

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
