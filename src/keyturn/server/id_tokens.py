"""OpenID Connect ID tokens (Core §2, §3.1.3.6), issued when ``openid`` is in scope."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from keyturn.server.context import ServerContext
from keyturn.storage.records import User

OPENID = "openid"


def at_hash(access_token: str, alg: str) -> str:
    """Left half of the hash of the access token, base64url (Core §3.1.3.6)."""
    digest = (hashlib.sha512 if alg in ("EdDSA", "Ed25519") else hashlib.sha256)(
        access_token.encode("ascii")
    ).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def profile_claims(user: User, scopes: tuple[str, ...]) -> dict[str, Any]:
    if "profile" not in scopes:
        return {}
    claims: dict[str, Any] = {"preferred_username": user.username}
    if user.name:
        claims["name"] = user.name
    return claims


async def make_id_token(
    ctx: ServerContext,
    *,
    client_id: str,
    user: User,
    scopes: tuple[str, ...],
    auth_time: int,
    nonce: str | None,
    access_token: str,
) -> str:
    now = int(ctx.clock())
    alg = ctx.keyring.signer().alg
    claims: dict[str, Any] = {
        "iss": ctx.settings.issuer_url,
        "sub": user.user_id,
        "aud": client_id,
        "exp": now + ctx.settings.id_token_lifetime,
        "iat": now,
        "auth_time": auth_time,
        "at_hash": at_hash(access_token, alg),
        **profile_claims(user, scopes),
    }
    if nonce:
        claims["nonce"] = nonce
    token, _ = await ctx.keyring.sign(claims, typ="JWT")
    return token
