"""``POST /oauth/revoke`` (RFC 7009).

The client authenticates as at the token endpoint. ``token_type_hint`` only
says where to look first; every token is found by its keyed hash whatever
the hint says. Unknown tokens answer 200 (§2.2: nothing to tell an attacker);
a refresh token takes its whole family, access tokens included. Who may
revoke what: `presented_token.may_revoke` (its own tokens; any token for a
client with the ``keyturn:admin`` scope).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from keyturn.core.errors import UnauthorizedClientError
from keyturn.server import token_service
from keyturn.server.context import get_context
from keyturn.server.endpoints.presented_token import REVOKE_REFUSAL, may_revoke, presented_token
from keyturn.server.responses import NO_STORE


async def revocation_endpoint(request: Request) -> Response:
    ctx = get_context(request)
    client, record = await presented_token(ctx, request)
    if record is not None:
        if not may_revoke(client, record):
            raise UnauthorizedClientError(REVOKE_REFUSAL)
        await token_service.revoke(ctx, record)
    return Response(status_code=200, headers=NO_STORE)
