"""Who may call the admin API: a live Keyturn access token with the admin scope.

The bearer token is looked up by its keyed hash, so revocation and expiry
take effect at once, and RFC 6750 answers say what is wrong (401 without a
usable token, 403 ``insufficient_scope`` naming the scope).
"""

from __future__ import annotations

from starlette.requests import Request

from keyturn.core.errors import InsufficientScopeError, InvalidRequestError, InvalidTokenError
from keyturn.server import token_service
from keyturn.server.context import ServerContext, get_context
from keyturn.storage.records import TOKEN_KIND_ACCESS

ADMIN_SCOPE = "keyturn:admin"
REALM = 'Bearer realm="keyturn-admin"'


def _challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    value = REALM
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{description}"'
    if error == "insufficient_scope":
        value += f', scope="{ADMIN_SCOPE}"'
    return {"WWW-Authenticate": value}


async def require_admin(request: Request) -> ServerContext:
    ctx = get_context(request)
    header = request.headers.get("authorization")
    if not header:
        raise InvalidTokenError(
            "send an access token with the keyturn:admin scope as a Bearer token",
            headers=_challenge(),
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidRequestError(
            "the Authorization header must be 'Bearer <token>'",
            headers=_challenge("invalid_request", "malformed Authorization header"),
        )
    record = await token_service.find_by_value(ctx, token)
    if record is None or record.kind != TOKEN_KIND_ACCESS or not record.is_active(ctx.clock()):
        description = "the access token is unknown, expired or revoked"
        raise InvalidTokenError(description, headers=_challenge("invalid_token", description))
    if ADMIN_SCOPE not in record.scope.split():
        description = f"the token lacks the {ADMIN_SCOPE} scope"
        raise InsufficientScopeError(
            description, headers=_challenge("insufficient_scope", description)
        )
    return ctx
