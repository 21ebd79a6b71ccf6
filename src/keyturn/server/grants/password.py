"""RFC 6749 §4.3, off unless a confidential client is explicitly allowed it.

RFC 9700 §2.4 says not to use this grant; it exists for migrations and
first-party tools. Failures do not say whether the username exists, and
count toward the same per-username lockout as the login page.
"""

from __future__ import annotations

from typing import Any

from keyturn.core.errors import InvalidGrantError, InvalidRequestError
from keyturn.server.context import ServerContext
from keyturn.server.grants.common import (
    TokenDecision,
    access_lifetime,
    add_id_token,
    build_pair,
    grant_audience,
    grant_scopes,
    parse_scope,
    refuse_public,
    requested_audience,
)
from keyturn.server.lockout import SOURCE, Lockout
from keyturn.server.passwords import verify_password
from keyturn.storage.records import GRANT_PASSWORD, Client

GRANT_TYPE = GRANT_PASSWORD
PUBLIC_CLIENTS = False  # a public client could not keep the user's password from others
ADVERTISED = True


async def handle(ctx: ServerContext, client: Client, params: dict[str, str]) -> dict[str, Any]:
    refuse_public(client, GRANT_TYPE)
    username = params.get("username")
    password = params.get("password")
    if not username or password is None:
        raise InvalidRequestError("username and password are required")
    scopes = grant_scopes(parse_scope(params.get("scope")), client.scopes)
    settings = ctx.settings
    lockout = Lockout.for_users(ctx)
    source = SOURCE.get()
    name = username.lower()
    await lockout.check(ctx, name, source, "too many failed logins; wait and retry")
    user = await ctx.storage.get_user_by_name(username)
    if not await verify_password(user.password_hash if user else None, password) or not user:
        await lockout.failed(ctx, name, source)
        raise InvalidGrantError("wrong username or password")
    decision = TokenDecision(
        client=client,
        subject=user.user_id,
        scopes=scopes,
        audience=grant_audience(requested_audience(params), client.audiences, settings.audience),
        grant_type=GRANT_TYPE,
        lifetime=access_lifetime(client, settings),
        auth_time=int(ctx.clock()),
    )
    response, records, access = await build_pair(ctx, decision)
    await add_id_token(ctx, response, decision, user, access)
    await ctx.storage.record_tokens(records)
    return response
