"""``POST /oauth/token`` (RFC 6749 §3.2).

A short list of named steps, each of which may raise the RFC error it maps to:
parse the body, check the grant type is known, authenticate the client, apply
its issuance rate limit, check it may use the grant, run the grant.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from keyturn.core.errors import (
    InvalidClientError,
    InvalidRequestError,
    RateLimitedError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from keyturn.server import metrics, tracing
from keyturn.server.client_auth import authenticate_client
from keyturn.server.context import ServerContext, get_context
from keyturn.server.errors import bare_app
from keyturn.server.grants import HANDLERS
from keyturn.server.lockout import SOURCE, source_of
from keyturn.server.request_body import parse_params
from keyturn.server.responses import json_response
from keyturn.storage.health import missing_reference
from keyturn.storage.records import Client

ISSUANCE_WINDOW = 60.0


@tracing.traced("keyturn.token_request", success="issued")  # off: a call straight through
async def token_endpoint(request: Request) -> Response:
    ctx = get_context(request)
    params = await parse_params(request, ctx.settings.max_body_bytes)
    return json_response(await grant_tokens(ctx, request, params))


async def grant_tokens(
    ctx: ServerContext, request: Request, params: dict[str, str]
) -> dict[str, Any]:
    """Every step after parsing: the RFC 6749 token response for ``params``.

    The vendor-compatible token routes (``server/vendors/``) parse their own
    bodies and shape their own answers around this one call.
    """
    grant_type = params.get("grant_type")
    if not grant_type:
        raise InvalidRequestError("the grant_type parameter is required")
    handler = HANDLERS.get(grant_type)
    if handler is None:
        raise UnsupportedGrantTypeError(
            f"grant_type {grant_type!r} is not supported; supported: {', '.join(HANDLERS)}"
        )
    tracing.annotate(grant_type=grant_type)
    SOURCE.set(source_of(request))  # for grants that count failed logins (password)
    client = await authenticate_client(ctx, request, params)
    tracing.annotate(client_id=client.client_id)
    await check_issuance_rate(ctx, client)
    if grant_type not in client.grant_types:
        raise UnauthorizedClientError(f"this client is not allowed the {grant_type} grant")
    try:
        return await handler(ctx, client, params)
    except Exception as exc:
        if not missing_reference(exc):
            raise
    # Deleted by another process (or the CLI) while this one had it cached.
    ctx.clients.forget(client.client_id)
    raise InvalidClientError(
        "client authentication failed: unknown client or wrong secret",
        detail=f"client {client.client_id!r} was deleted",
    )


async def check_issuance_rate(ctx: ServerContext, client: Client) -> None:
    limit = client.rate_limit if client.rate_limit is not None else ctx.settings.token_rate_limit
    wait = await ctx.limiter.acquire("issue:" + client.client_id, limit, ISSUANCE_WINDOW)
    if wait is not None:
        metrics.RATE_LIMITED_ISSUANCE.inc()
        raise RateLimitedError(
            f"this client asked for more than {limit} tokens a minute; "
            "reuse the token you have until it expires",
            retry_after=wait,
        )


token_app = bare_app(token_endpoint, metrics.token_error)
"""The endpoint as a bare ASGI app, for the app's token fast path (see ``app.py``)."""
