"""``POST /oauth/revoke`` (RFC 7009).

The client authenticates as at the token endpoint. ``token_type_hint`` only
says where to look first; every token is found by its keyed hash whatever
the hint says. Unknown tokens answer 200 (§2.2: nothing to tell an attacker);
a refresh token takes its whole family, access tokens included.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from keyturn.core.errors import InvalidRequestError, UnauthorizedClientError
from keyturn.server import token_service
from keyturn.server.client_auth import authenticate_client
from keyturn.server.context import get_context
from keyturn.server.request_body import parse_params
from keyturn.server.responses import NO_STORE


async def revocation_endpoint(request: Request) -> Response:
    ctx = get_context(request)
    params = await parse_params(request, ctx.settings.max_body_bytes)
    client = await authenticate_client(ctx, request, params)
    token = params.get("token")
    if not token:
        raise InvalidRequestError("the token parameter is required")
    record = await token_service.find_by_value(ctx, token)
    if record is not None:
        if record.client_id != client.client_id:
            raise UnauthorizedClientError("this token was not issued to this client")
        await token_service.revoke(ctx, record)
    return Response(status_code=200, headers=NO_STORE)
