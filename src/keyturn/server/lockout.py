"""Lockouts after failed authentication that an outsider cannot turn against anyone else.

The policy, for clients (secret) and users (password) alike:

- **Per name and source.** ``KEYTURN_AUTH_FAILURE_LIMIT`` (clients, 10) or
  ``KEYTURN_LOGIN_FAILURE_LIMIT`` (users, 5) failures for one client id or
  username *from one source address* in ``KEYTURN_AUTH_FAILURE_WINDOW``
  (300 s) lock that name out *for that source*. Client ids are public (every
  JWT carries one): locking a client out everywhere would let anyone who saw
  one of its tokens keep it from working.
- **Per source.** ``KEYTURN_AUTH_FAILURE_ADDRESS_LIMIT`` (100) failures from
  one source in the window, whatever the names, throttle every authentication
  attempt from that source until its bucket refills. Guessing many names, or
  a flood of random ones, stops there, before any database lookup.

A source is the client address as the ASGI server reports it (behind a load
balancer, configure the forwarded-address settings so it is the real one); an
IPv6 address counts as its /64, the block one host is usually given. Long
names are hashed so a key's size is bounded.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from keyturn.core.errors import RateLimitedError
from keyturn.server import metrics
from keyturn.server.context import ServerContext

SOURCE: ContextVar[str] = ContextVar("keyturn_source", default="unknown")
"""The current request's source, for steps (grants) that are not handed the request."""

MAX_NAME = 128


def source_of(request: HTTPConnection) -> str:
    # The scope's (host, port) pair, not ``request.client``, which builds a named
    # tuple on every read: a token request reads its source twice.
    client = request.scope.get("client")
    return _source(client[0] if client else "")


@functools.lru_cache(maxsize=4096)
def _source(host: str) -> str:
    """The address a lockout counts ``host`` under (pure: a busy caller parses it once)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _name_key(name: str) -> str:
    if len(name) <= MAX_NAME:
        return name
    return "#" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Lockout:
    """One kind of lockout: ``kind`` names the namespace (``authfail``, ``loginfail``)."""

    kind: str
    limit: int

    @classmethod
    def for_clients(cls, ctx: ServerContext) -> Lockout:
        return _lockout("authfail", ctx.settings.auth_failure_limit)

    @classmethod
    def for_users(cls, ctx: ServerContext) -> Lockout:
        return _lockout("loginfail", ctx.settings.login_failure_limit)

    def _keys(self, name: str, source: str) -> tuple[str, str]:
        return f"failaddr:{source}", f"{self.kind}:{_name_key(name)}|{source}"

    async def blocked_for(self, ctx: ServerContext, name: str, source: str) -> float | None:
        """Seconds to wait if ``source`` is throttled or ``name`` locked for it, else None."""
        return (await self._blocked(ctx, name, source))[0]

    async def _blocked(
        self, ctx: ServerContext, name: str, source: str
    ) -> tuple[float | None, Any]:
        """The wait, and the counter of the 429 it makes (the address's or the name's)."""
        settings = ctx.settings
        window = settings.auth_failure_window
        address_key, name_key = self._keys(name, source)
        wait = await ctx.limiter.blocked_for(
            address_key, settings.auth_failure_address_limit, window
        )
        if wait is not None:
            return wait, metrics.RATE_LIMITED_ADDRESS
        wait = await ctx.limiter.blocked_for(name_key, self.limit, window)
        return wait, metrics.RATE_LIMITED_LOCKOUT

    async def check(self, ctx: ServerContext, name: str, source: str, message: str) -> None:
        wait, counter = await self._blocked(ctx, name, source)
        if wait is not None:
            counter.inc()
            raise RateLimitedError(
                message, retry_after=wait, detail=f"{self.kind} {name[:64]!r} from {source}"
            )

    async def failed(self, ctx: ServerContext, name: str, source: str) -> None:
        settings = ctx.settings
        window = settings.auth_failure_window
        address_key, name_key = self._keys(name, source)
        metrics.auth_failed(self.kind)
        await ctx.limiter.acquire(address_key, settings.auth_failure_address_limit, window)
        await ctx.limiter.acquire(name_key, self.limit, window)


@functools.lru_cache(maxsize=16)
def _lockout(kind: str, limit: int) -> Lockout:
    """One (immutable) `Lockout` per kind and limit, not one built per request."""
    return Lockout(kind, limit)
