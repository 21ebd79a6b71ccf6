"""``/oauth/userinfo`` (OpenID Connect Core §5.3): claims about the token's user."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from keyturn.core.errors import InvalidTokenError
from keyturn.server.bearer import bearer_token_record, challenge
from keyturn.server.context import get_context
from keyturn.server.id_tokens import OPENID, profile_claims
from keyturn.server.responses import json_response

REALM = "keyturn-userinfo"


async def userinfo_endpoint(request: Request) -> Response:
    ctx = get_context(request)
    record = await bearer_token_record(ctx, request, realm=REALM, scope=OPENID)
    user = await ctx.storage.get_user(record.subject or "")
    if user is None:
        description = "the token's user no longer exists"
        raise InvalidTokenError(description, headers=challenge(REALM, "invalid_token", description))
    body: dict[str, Any] = {"sub": user.user_id}
    body.update(profile_claims(user, tuple(record.scope.split())))
    return json_response(body)
