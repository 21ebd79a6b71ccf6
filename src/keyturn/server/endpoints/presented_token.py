"""The common start of revocation and introspection (RFC 7009 §2.1, RFC 7662 §2.1).

Both parse a form body, authenticate the client and require ``token``; this is
the HTTP half of that, so `keyturn.server.token_service` stays free of any web
framework and the CLI and the admin API can call it too.
"""

from __future__ import annotations

from starlette.requests import Request

from keyturn.core.errors import InvalidRequestError
from keyturn.server import token_service
from keyturn.server.client_auth import authenticate_client
from keyturn.server.context import ServerContext
from keyturn.server.request_body import parse_params
from keyturn.storage.records import Client, TokenRecord

__all__ = ["presented_token"]


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
