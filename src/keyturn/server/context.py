"""Everything a request handler needs, built once per process in the app lifespan."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from keyturn.keys.keyring import KeyRing
from keyturn.server.clients import ClientCache
from keyturn.server.denylist import DenyList, NoDenyList
from keyturn.server.issuance import TokenIssuer
from keyturn.server.ratelimit import RateLimiter
from keyturn.server.secrets import Hasher
from keyturn.server.settings import Settings
from keyturn.storage.health import ServiceHealth
from keyturn.storage.protocol import Storage


class ServerStorage(Storage, Protocol):
    """The storage contract plus what the running process itself needs of it.

    ``health``, ``probe`` and ``close`` serve readiness, metrics, errors and
    shutdown. ``engine`` is here, not in `keyturn.storage.protocol`, because
    migrations (``keyturn db upgrade``, the readiness check's schema revision)
    are SQL by nature and the contract module must not load SQLAlchemy.
    `keyturn.storage.repository.SqlStorage` is the one implementation.
    """

    engine: AsyncEngine
    health: ServiceHealth

    async def probe(self) -> None: ...
    async def close(self) -> None: ...


@dataclass
class ServerContext:
    settings: Settings
    storage: ServerStorage
    hasher: Hasher
    keyring: KeyRing
    issuer: TokenIssuer
    clients: ClientCache
    limiter: RateLimiter
    denylist: DenyList = field(default_factory=NoDenyList)
    clock: Callable[[], float] = field(default=time.time)


def get_context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.keyturn
    return ctx
