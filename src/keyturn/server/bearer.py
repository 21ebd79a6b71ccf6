"""Bearer access tokens presented to Keyturn's own resources (admin API, userinfo).

The token is looked up by its keyed hash, so expiry and revocation take effect
at once; failures are RFC 6750 errors with a ``WWW-Authenticate`` challenge,
read and written by `keyturn.core.bearer` as the guard does.
"""

from __future__ import annotations

from starlette.requests import Request

from keyturn.core.bearer import MalformedAuthorizationError, bearer_credentials, www_authenticate
from keyturn.core.errors import InsufficientScopeError, InvalidRequestError, InvalidTokenError
from keyturn.server import token_service
from keyturn.server.context import ServerContext
from keyturn.storage.records import TOKEN_KIND_ACCESS, TokenRecord


def challenge(
    realm: str,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
) -> dict[str, str]:
    value = www_authenticate(realm=realm, error=error, error_description=description, scope=scope)
    return {"WWW-Authenticate": value}


async def bearer_token_record(
    ctx: ServerContext, request: Request, *, realm: str, scope: str
) -> TokenRecord:
    """The live access token in the Authorization header that carries ``scope``."""
    header = request.headers.get("authorization")
    if not header:
        raise InvalidTokenError(
            f"send an access token with the {scope} scope as a Bearer token",
            headers=challenge(realm),
        )
    try:
        # Not only b64token: tokens imported from a legacy server may be any string.
        token = bearer_credentials(header, b64token=False)
    except MalformedAuthorizationError:
        token = None
    if token is None:  # another scheme, or a malformed Bearer header
        raise InvalidRequestError(
            "the Authorization header must be 'Bearer <token>'",
            headers=challenge(realm, "invalid_request", "malformed Authorization header"),
        )
    record = await token_service.find_by_value(ctx, token)
    if record is None or record.kind != TOKEN_KIND_ACCESS or not record.is_active(ctx.clock()):
        description = "the access token is unknown, expired or revoked"
        raise InvalidTokenError(description, headers=challenge(realm, "invalid_token", description))
    if scope not in record.scope.split():
        description = f"the token lacks the {scope} scope"
        raise InsufficientScopeError(
            description, headers=challenge(realm, "insufficient_scope", description, scope)
        )
    return record
