"""THE list of token-endpoint grants; everything else that names grants derives from it.

Each grant module exports its ``GRANT_TYPE``, its ``handle`` and its policy
(``PUBLIC_CLIENTS``: a client without a secret may be registered for it;
``ADVERTISED``: it is listed in the RFC 8414 metadata), as node-oidc-provider's
``lib/actions/grants/*.js`` export their handler and grant type. Adding a grant
is its module plus one line in `GRANTS`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from keyturn.server.context import ServerContext
from keyturn.server.grants import (
    authorization_code,
    client_credentials,
    migration_token,
    password,
    refresh_token,
)
from keyturn.storage.records import Client

GrantHandler = Callable[[ServerContext, Client, dict[str, str]], Awaitable[dict[str, Any]]]


class Grant(Protocol):
    """What a grant module exports (a module satisfies this structurally)."""

    @property
    def GRANT_TYPE(self) -> str: ...

    @property
    def PUBLIC_CLIENTS(self) -> bool: ...

    @property
    def ADVERTISED(self) -> bool: ...

    async def handle(
        self, ctx: ServerContext, client: Client, params: dict[str, str]
    ) -> dict[str, Any]: ...


GRANTS: tuple[Grant, ...] = (
    authorization_code,
    client_credentials,
    password,
    refresh_token,
    migration_token,
)

HANDLERS: dict[str, GrantHandler] = {grant.GRANT_TYPE: grant.handle for grant in GRANTS}
KNOWN_GRANTS: tuple[str, ...] = tuple(HANDLERS)
PUBLIC_CLIENT_GRANTS: tuple[str, ...] = tuple(g.GRANT_TYPE for g in GRANTS if g.PUBLIC_CLIENTS)
ADVERTISED_GRANTS: tuple[str, ...] = tuple(g.GRANT_TYPE for g in GRANTS if g.ADVERTISED)
