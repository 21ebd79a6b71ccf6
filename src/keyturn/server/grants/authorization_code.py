"""RFC 6749 §4.1.3 with RFC 7636 PKCE and RFC 9700 §4.5 code-replay defence.

The code must belong to this client, be presented with the same redirect URI
(required whenever the authorization request carried one, §4.1.3) and, if a
challenge was sent, with a verifier that matches it (compared in constant
time). It is consumed and the tokens it yields are recorded in one
transaction; a code presented again is ``invalid_grant`` and revokes every
token issued from it.
"""

from __future__ import annotations

import logging
from typing import Any

from keyturn.core import pkce
from keyturn.core.errors import InvalidGrantError
from keyturn.server.context import ServerContext
from keyturn.server.grants.common import (
    TokenDecision,
    access_lifetime,
    add_id_token,
    build_pair,
    grant_audience,
    require,
)
from keyturn.storage.records import GRANT_AUTHORIZATION_CODE, AuthorizationCode, Client

GRANT_TYPE = GRANT_AUTHORIZATION_CODE
PUBLIC_CLIENTS = True  # with PKCE, the grant RFC 9700 §2.1.1 wants public clients to use
ADVERTISED = True
log = logging.getLogger("keyturn.server")


def check_pkce(code: AuthorizationCode, verifier: str | None) -> None:
    if code.code_challenge is None:
        if verifier is not None:
            raise InvalidGrantError("this code was issued without PKCE; drop code_verifier")
        return
    if verifier is None:
        raise InvalidGrantError("code_verifier is required: the request used PKCE")
    method = "S256" if code.code_challenge_method == "S256" else "plain"
    try:
        matches = pkce.verify(verifier, code.code_challenge, method)
    except ValueError:
        raise InvalidGrantError("code_verifier is not a valid RFC 7636 verifier") from None
    if not matches:
        raise InvalidGrantError("code_verifier does not match the code_challenge")


def check_redirect_uri(code: AuthorizationCode, client: Client, given: str | None) -> None:
    """RFC 6749 §4.1.3: ``redirect_uri`` is REQUIRED if the authorization request
    included it, and then identical.

    A code records ``""`` when that request left it out and relied on the
    client's only registered URI; a token request may then omit it too, or
    name that one URI.
    """
    if code.redirect_uri:
        if given is None:
            raise InvalidGrantError(
                "redirect_uri is required: the authorization request included it"
            )
        if given != code.redirect_uri:
            raise InvalidGrantError("redirect_uri differs from the authorization request's")
    elif given is not None and tuple(client.redirect_uris) != (given,):
        raise InvalidGrantError("redirect_uri differs from the one the code was sent to")


async def handle(ctx: ServerContext, client: Client, params: dict[str, str]) -> dict[str, Any]:
    value = require(params, "code")
    now = int(ctx.clock())
    code = await ctx.storage.find_code(ctx.hasher.hash(value))
    if code is None:
        raise InvalidGrantError("the authorization code is unknown")
    if code.client_id != client.client_id:
        raise InvalidGrantError("the authorization code was issued to another client")
    if code.consumed_at is not None:
        await _revoke_replayed(ctx, code, now)
    if code.expires_at <= now:
        raise InvalidGrantError("the authorization code has expired; start again")
    check_redirect_uri(code, client, params.get("redirect_uri"))
    check_pkce(code, params.get("code_verifier"))

    user = await ctx.storage.get_user(code.user_id)
    if user is None:
        raise InvalidGrantError("the user of this code no longer exists")
    scopes = tuple(code.scope.split())
    decision = TokenDecision(
        client=client,
        subject=user.user_id,
        scopes=scopes,
        audience=grant_audience(None, client.audiences, ctx.settings.audience),
        grant_type=GRANT_TYPE,
        lifetime=access_lifetime(client, ctx.settings),
        family_id=code.family_id,
        auth_time=code.auth_time,
    )
    response, records, access = await build_pair(ctx, decision)
    await add_id_token(ctx, response, decision, user, access, nonce=code.nonce)
    if not await ctx.storage.redeem_code(code.code_id, now, records):
        # Another request redeemed it between our read and now: that is a replay.
        await _revoke_replayed(ctx, code, now)
    return response


async def _revoke_replayed(ctx: ServerContext, code: AuthorizationCode, now: int) -> None:
    revoked = await ctx.storage.revoke_family(code.family_id, now)
    await ctx.denylist.add(revoked)
    log.warning(
        "authorization code replayed: client %s user %s; revoked %d tokens",
        code.client_id,
        code.user_id,
        len(revoked),
    )
    raise InvalidGrantError(
        "the authorization code was already used; every token it issued has been revoked"
    )
