"""RFC 6749 §6 refresh, held to RFC 9700 §4.14: rotate on every use, detect reuse.

Steps: find the token by keyed hash; it must be a live refresh token of this
client. Sign the new access token and make the next refresh token, then
consume the old one and record both in one transaction. Of several concurrent
presenters exactly one wins; the others, inside the grace window, get the
winner's answer replayed. A presentation after the window is reuse: the whole
family is revoked.
"""

from __future__ import annotations

import logging
from typing import Any

from keyturn.core.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from keyturn.server import token_service
from keyturn.server.context import ServerContext
from keyturn.server.grants.common import (
    TokenDecision,
    add_id_token,
    parse_scope,
    require,
    wants_id_token,
)
from keyturn.server.id_tokens import OPENID
from keyturn.server.refresh_tokens import (
    decrypt_replay,
    encrypt_replay,
    new_refresh_record,
    pair_response,
)
from keyturn.storage.records import GRANT_REFRESH_TOKEN, TOKEN_KIND_REFRESH, Client, TokenRecord

GRANT_TYPE = GRANT_REFRESH_TOKEN
PUBLIC_CLIENTS = True  # rotated on every use, so a public client may hold one (RFC 9700 §4.14)
ADVERTISED = True
log = logging.getLogger("keyturn.server")


def decide(
    client: Client, record: TokenRecord, params: dict[str, str], default_lifetime: int
) -> TokenDecision:
    original = tuple(record.scope.split())
    requested = parse_scope(params.get("scope"))
    wider = [s for s in requested if s not in original]
    if wider:
        raise InvalidScopeError(
            f"a refresh can only narrow the scope; {' '.join(wider)} was not granted"
        )
    scopes = requested or original
    withdrawn = [s for s in scopes if s not in client.scopes]
    if withdrawn:
        raise InvalidScopeError(
            f"this client may no longer have {' '.join(withdrawn)}; ask for a narrower scope"
        )
    return TokenDecision(
        client=client,
        subject=record.subject or client.client_id,
        scopes=scopes,
        audience=record.audience,
        grant_type=GRANT_TYPE,
        lifetime=client.access_token_lifetime or default_lifetime,
        family_id=record.family_id,
        auth_time=record.auth_time,
    )


async def handle(ctx: ServerContext, client: Client, params: dict[str, str]) -> dict[str, Any]:
    return await rotate(ctx, client, require(params, "refresh_token"), params)


async def rotate(
    ctx: ServerContext, client: Client, value: str, params: dict[str, str]
) -> dict[str, Any]:
    """The refresh itself; also Authlete-style ID-token reissue from the admin API.

    With ``openid`` in the granted scope and a user behind the grant, the answer
    carries a new ID token (OpenID Connect Core §12.2) with the original
    ``auth_time``.
    """
    now = int(ctx.clock())
    record = await ctx.storage.find_token_by_hash(ctx.hasher.hash(value))
    if record is None or record.kind != TOKEN_KIND_REFRESH:
        raise InvalidGrantError("the refresh token is unknown")
    if record.client_id != client.client_id:
        raise InvalidGrantError("the refresh token was issued to another client")
    if record.revoked_at is not None:
        return await _replay_or_reuse(ctx, record, value, now)
    if record.expires_at <= now:
        raise InvalidGrantError("the refresh token has expired; sign in again")

    decision = decide(client, record, params, ctx.settings.access_token_lifetime)
    access = await ctx.issuer.sign_access_token(decision)
    assert record.family_id is not None
    next_value, next_record = new_refresh_record(
        ctx,
        decision,
        scope=record.scope,
        family_id=record.family_id,
        parent_id=record.token_id,
        now=now,
    )
    response = pair_response(access, next_value)
    if wants_id_token(decision):
        user = await ctx.storage.get_user(decision.subject)
        await add_id_token(ctx, response, decision, user, access)
    grace = ctx.settings.refresh_grace_period
    replay = (encrypt_replay(ctx, value, response), now + grace) if grace > 0 else None
    if await ctx.storage.exchange_token(record.token_id, now, [access.record, next_record], replay):
        return response
    # Another request rotated it first (or it expired this instant).
    current = await ctx.storage.get_token(record.token_id)
    if current is None or current.revoked_at is None:
        raise InvalidGrantError("the refresh token has expired; sign in again")
    return await _replay_or_reuse(ctx, current, value, now)


async def _replay_or_reuse(
    ctx: ServerContext, record: TokenRecord, value: str, now: int
) -> dict[str, Any]:
    assert record.revoked_at is not None
    grace = ctx.settings.refresh_grace_period
    if grace > 0 and now - record.revoked_at <= grace:  # 0: no replay at all
        ciphertext = await ctx.storage.get_replay(record.token_id, now)
        replayed = decrypt_replay(ctx, value, ciphertext) if ciphertext else None
        if replayed is not None:
            successor = await ctx.storage.find_token_by_hash(
                ctx.hasher.hash(str(replayed.get("refresh_token", "")))
            )
            if successor is not None and successor.is_active(now):
                return replayed
            raise InvalidGrantError("this grant has been revoked; sign in again")
    revoked = await ctx.storage.revoke_family(record.family_id or record.token_id, now)
    await ctx.denylist.add(revoked)
    log.warning(
        "refresh token reuse: client %s subject %s family %s; revoked %d tokens",
        record.client_id,
        record.subject,
        record.family_id,
        len(revoked),
    )
    raise InvalidGrantError(
        "this refresh token was already used, so the whole grant has been revoked; sign in again"
    )


async def reissue_id_token(
    ctx: ServerContext, value: str, *, subject: str | None = None
) -> dict[str, Any]:
    """Spend a refresh token of an OpenID grant for a new ID token, access token and
    refresh token (Authlete's reissue; rotation and reuse rules apply), for the admin
    API and the Authlete route alike. ``subject``, when given, must be the grant's."""
    record = await token_service.find_by_value(ctx, value)
    if record is None or record.kind != TOKEN_KIND_REFRESH:
        raise token_service.NotFoundError("no refresh token with that value")
    if subject is not None and subject != record.subject:
        raise InvalidRequestError("sub differs from the subject of the refresh token")
    if OPENID not in record.scope.split() or record.auth_time is None:
        raise InvalidRequestError("this grant has no openid scope, so it has no ID token")
    client = await token_service.get_client(ctx, record.client_id)
    response = await rotate(ctx, client, value, {})
    if "id_token" not in response:
        raise InvalidRequestError("the user of this grant no longer exists")
    return response
