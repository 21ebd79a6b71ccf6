"""Who may call the admin API: a live Keyturn access token with the admin scope."""

from __future__ import annotations

from starlette.requests import Request

from keyturn.server.bearer import bearer_token_record
from keyturn.server.context import ServerContext, get_context

ADMIN_SCOPE = "keyturn:admin"
REALM = "keyturn-admin"
ADMIN_TOKEN_KEY = "keyturn.admin_token"
"""Where `AdminGuard` leaves the token record it checked, in the ASGI scope."""


async def require_admin(request: Request) -> ServerContext:
    """The context, for a request whose admin token `AdminGuard` (or this) checked."""
    ctx = get_context(request)
    if ADMIN_TOKEN_KEY not in request.scope:
        await bearer_token_record(ctx, request, realm=REALM, scope=ADMIN_SCOPE)
    return ctx
