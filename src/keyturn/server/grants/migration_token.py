"""Square's migration grant: exchange a legacy token imported from another server, once.

Operators import their old tokens (by value or SHA-256) through the admin API;
a client presents an old token as ``migration_token`` and receives a Keyturn
access token (and refresh token, if the client may have them) for the same
subject and scopes. The exchange consumes the legacy token atomically.
"""

from __future__ import annotations

from typing import Any

from keyturn.core.errors import InvalidGrantError
from keyturn.server.context import ServerContext
from keyturn.server.grants.common import TokenDecision, access_lifetime, build_pair, require
from keyturn.server.secrets import legacy_lookup_value
from keyturn.server.token_service import regrant_scopes
from keyturn.storage.records import GRANT_MIGRATION_TOKEN, TOKEN_KIND_LEGACY, Client

GRANT_TYPE = GRANT_MIGRATION_TOKEN
PUBLIC_CLIENTS = False  # imported tokens belonged to confidential clients
ADVERTISED = True


async def handle(ctx: ServerContext, client: Client, params: dict[str, str]) -> dict[str, Any]:
    value = require(params, "migration_token")
    now = int(ctx.clock())
    record = await ctx.storage.find_token_by_hash(ctx.hasher.hash(legacy_lookup_value(value)))
    if record is None or record.kind != TOKEN_KIND_LEGACY:
        raise InvalidGrantError("the migration token is unknown")
    if record.client_id != client.client_id:
        raise InvalidGrantError("the migration token belongs to another client")
    if not record.is_active(now):
        raise InvalidGrantError("the migration token was already exchanged, revoked or expired")
    scopes = regrant_scopes(record, client)
    decision = TokenDecision(
        client=client,
        subject=record.subject or client.client_id,
        scopes=scopes,
        audience=record.audience or (ctx.settings.audience,),
        grant_type=GRANT_TYPE,
        lifetime=access_lifetime(client, ctx.settings),
    )
    response, records, _ = await build_pair(ctx, decision, parent_id=record.token_id)
    if not await ctx.storage.exchange_token(record.token_id, now, records):
        raise InvalidGrantError("the migration token was already exchanged")
    return response
