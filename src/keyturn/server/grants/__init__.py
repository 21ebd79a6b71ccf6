"""One module per grant type; each turns a request into a `TokenDecision` or an error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

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

HANDLERS: dict[str, GrantHandler] = {
    authorization_code.GRANT_TYPE: authorization_code.handle,
    client_credentials.GRANT_TYPE: client_credentials.handle,
    password.GRANT_TYPE: password.handle,
    refresh_token.GRANT_TYPE: refresh_token.handle,
    migration_token.GRANT_TYPE: migration_token.handle,
}
