"""``POST /oauth/introspect`` (RFC 7662).

Who may introspect what: `presented_token.may_introspect`. Everything else —
unknown, foreign, expired, revoked — is ``{"active": false}`` and nothing about
the token, so introspection cannot be used to probe tokens. One addition, about
the caller rather than the token: a client that may introspect only its own
tokens, presenting another client's token (live or dead alike, so nothing about
its state is told), gets ``not_permitted`` (why, and the fix), so a resource
server registered without ``can_introspect`` learns it is misconfigured instead
of seeing every token as revoked. RFC 7662 §2.2 still holds: ``active`` is
false. (That such a token was issued at all, its holder can already tell from
its signature.)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from keyturn.server.context import get_context
from keyturn.server.endpoints.presented_token import (
    INTROSPECT_REFUSAL,
    may_introspect_others,
    presented_token,
)
from keyturn.server.responses import json_response
from keyturn.storage.records import TOKEN_KIND_ACCESS

INACTIVE = {"active": False}
NOT_PERMITTED = {"active": False, "not_permitted": INTROSPECT_REFUSAL}


async def introspection_endpoint(request: Request) -> Response:
    ctx = get_context(request)
    client, record = await presented_token(ctx, request)
    if (
        record is not None
        and record.client_id != client.client_id
        and not may_introspect_others(client)
    ):
        return json_response(NOT_PERMITTED)
    if record is None or not record.is_active(ctx.clock()):
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
