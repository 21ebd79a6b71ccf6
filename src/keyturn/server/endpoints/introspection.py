"""``POST /oauth/introspect`` (RFC 7662).

A client may introspect the tokens issued to it; a client registered with
``can_introspect`` (a resource server) may introspect any token. Everything
else — unknown, foreign, expired, revoked — is ``{"active": false}`` and no
more, so introspection cannot be used to probe tokens.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from keyturn.server.context import get_context
from keyturn.server.endpoints.presented_token import presented_token
from keyturn.server.responses import json_response
from keyturn.storage.records import TOKEN_KIND_ACCESS

INACTIVE = {"active": False}


async def introspection_endpoint(request: Request) -> Response:
    ctx = get_context(request)
    client, record = await presented_token(ctx, request)
    if (
        record is None
        or not record.is_active(ctx.clock())
        or (record.client_id != client.client_id and not client.can_introspect)
    ):
        return json_response(INACTIVE)
    body: dict[str, Any] = {
        "active": True,
        "scope": record.scope,
        "client_id": record.client_id,
        "sub": record.subject,
        "exp": record.expires_at,
        "iat": record.issued_at,
        "jti": record.token_id,
        "iss": ctx.settings.issuer_url,
    }
    if record.kind == TOKEN_KIND_ACCESS:
        # token_type is the RFC 6749 §7.1 type of an access token; a refresh token
        # has none (RFC 7662 §2.2), so none is said rather than an invented one.
        body["token_type"] = "Bearer"
    if record.audience:
        body["aud"] = record.audience[0] if len(record.audience) == 1 else list(record.audience)
    return json_response(body)
