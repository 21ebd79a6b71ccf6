"""Everything a request handler needs, built once per process in the app lifespan."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from keyturn.keys.keyring import KeyRing
from keyturn.server.clients import ClientCache
from keyturn.server.denylist import DenyList, NoDenyList
from keyturn.server.issuance import TokenIssuer
from keyturn.server.ratelimit import RateLimiter
from keyturn.server.secrets import Hasher
from keyturn.server.settings import Settings
from keyturn.storage.repository import SqlStorage


@dataclass
class ServerContext:
    settings: Settings
    storage: SqlStorage
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
