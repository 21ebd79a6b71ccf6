"""RFC 6749 §4.4: a confidential client gets a token for itself (``sub`` = client id)."""

from __future__ import annotations

from typing import Any

from keyturn.server.context import ServerContext
from keyturn.server.grants.common import (
    TokenDecision,
    access_lifetime,
    grant_audience,
    grant_scopes,
    parse_scope,
    refuse_public,
    requested_audience,
)
from keyturn.server.settings import Settings
from keyturn.storage.records import GRANT_CLIENT_CREDENTIALS, Client

GRANT_TYPE = GRANT_CLIENT_CREDENTIALS
PUBLIC_CLIENTS = False  # the client authenticates as itself: it needs a secret
ADVERTISED = True


def decide(client: Client, params: dict[str, str], settings: Settings) -> TokenDecision:
    refuse_public(client, GRANT_TYPE)
    scopes = grant_scopes(parse_scope(params.get("scope")), client.scopes)
    audience = grant_audience(requested_audience(params), client.audiences, settings.audience)
    return TokenDecision(
        client=client,
        subject=client.client_id,
        scopes=scopes,
        audience=audience,
        grant_type=GRANT_TYPE,
        lifetime=access_lifetime(client, settings),
    )


async def handle(ctx: ServerContext, client: Client, params: dict[str, str]) -> dict[str, Any]:
    issued = await ctx.issuer.issue_access_token(decide(client, params, ctx.settings))
    return issued.response()
