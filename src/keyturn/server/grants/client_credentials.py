"""RFC 6749 §4.4: a confidential client gets a token for itself (``sub`` = client id)."""

from __future__ import annotations

from typing import Any

from keyturn.core.errors import UnauthorizedClientError
from keyturn.server.context import ServerContext
from keyturn.server.issuance import TokenDecision
from keyturn.server.scopes import grant_audience, grant_scopes, parse_scope
from keyturn.server.settings import Settings
from keyturn.storage.records import GRANT_CLIENT_CREDENTIALS, Client

GRANT_TYPE = GRANT_CLIENT_CREDENTIALS


def decide(client: Client, params: dict[str, str], settings: Settings) -> TokenDecision:
    if client.is_public:
        raise UnauthorizedClientError("a public client cannot use the client_credentials grant")
    scopes = grant_scopes(parse_scope(params.get("scope")), client.scopes)
    audience = grant_audience(
        params.get("audience") or params.get("resource"), client.audiences, settings.audience
    )
    return TokenDecision(
        client=client,
        subject=client.client_id,
        scopes=scopes,
        audience=audience,
        grant_type=GRANT_TYPE,
        lifetime=client.access_token_lifetime or settings.access_token_lifetime,
    )


async def handle(ctx: ServerContext, client: Client, params: dict[str, str]) -> dict[str, Any]:
    issued = await ctx.issuer.issue_access_token(decide(client, params, ctx.settings))
    return issued.response()
