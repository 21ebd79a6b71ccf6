"""Who may call the admin API: a live Keyturn access token with the admin scope."""

from __future__ import annotations

from starlette.requests import Request

from keyturn.server.bearer import bearer_token_record
from keyturn.server.context import ServerContext, get_context

ADMIN_SCOPE = "keyturn:admin"


async def require_admin(request: Request) -> ServerContext:
    ctx = get_context(request)
    await bearer_token_record(ctx, request, realm="keyturn-admin", scope=ADMIN_SCOPE)
    return ctx
