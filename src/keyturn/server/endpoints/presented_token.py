"""The common start of revocation and introspection (RFC 7009 §2.1, RFC 7662 §2.1).

Both parse a form body, authenticate the client and require ``token``; this is
the HTTP half of that, so `keyturn.server.token_service` stays free of any web
framework and the CLI and the admin API can call it too.

Who may act on what is decided here, once for both endpoints (the README's
"Who may introspect and revoke what" says the same):

- every client may introspect and revoke the tokens issued to it;
- a client registered with ``can_introspect`` (a resource server) may introspect
  any token, but not revoke it;
- a client registered with the ``keyturn:admin`` scope may introspect and revoke
  any token, as it already may through the admin API.
"""

from __future__ import annotations

from starlette.requests import Request

from keyturn.core.errors import InvalidRequestError
from keyturn.server import token_service
from keyturn.server.admin.auth import ADMIN_SCOPE
from keyturn.server.client_auth import authenticate_client
from keyturn.server.context import ServerContext
from keyturn.server.request_body import parse_params
from keyturn.storage.records import Client, TokenRecord

__all__ = [
    "INTROSPECT_REFUSAL",
    "REVOKE_REFUSAL",
    "may_introspect_others",
    "may_revoke",
    "presented_token",
]

INTROSPECT_REFUSAL = (
    "this client may introspect only the tokens issued to it; register it with "
    "can_introspect (keyturn clients create/update --can-introspect) to introspect others"
)
REVOKE_REFUSAL = (
    "this token was not issued to this client; only a client with the keyturn:admin "
    "scope may revoke other clients' tokens"
)


def _is_admin(client: Client) -> bool:
    return ADMIN_SCOPE in client.scopes


def may_introspect_others(client: Client) -> bool:
    return client.can_introspect or _is_admin(client)


def may_revoke(client: Client, record: TokenRecord) -> bool:
    return record.client_id == client.client_id or _is_admin(client)


async def presented_token(
    ctx: ServerContext, request: Request
) -> tuple[Client, TokenRecord | None]:
    """The authenticated client and the record of the token it presents, if any."""
    params = await parse_params(request, ctx.settings.max_body_bytes)
    client = await authenticate_client(ctx, request, params)
    token = params.get("token")
    if not token:
        raise InvalidRequestError("the token parameter is required")
    return client, await token_service.find_by_value(ctx, token)
