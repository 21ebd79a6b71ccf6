"""Refresh tokens: opaque values, recorded by keyed hash, rotated on every use.

A rotated token's answer is kept for the grace window so that concurrent
presenters (two tabs, a retried request) get the *same* new pair (RFC 9700
§4.14.2). The answer is encrypted with AES-256-GCM under a key derived from
the pepper and the *old refresh token's value*, which is never stored: the
row cannot be read without presenting that token, so keeping it for a few
seconds stores no usable secret.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyturn.server.context import ServerContext
from keyturn.server.issuance import IssuedToken, TokenDecision
from keyturn.server.secrets import generate_refresh_token, generate_token_id
from keyturn.storage.records import GRANT_REFRESH_TOKEN, TOKEN_KIND_REFRESH, TokenRecord

_REPLAY_LABEL = "refresh-replay"


def may_have_refresh_tokens(decision: TokenDecision) -> bool:
    return GRANT_REFRESH_TOKEN in decision.client.grant_types


def new_refresh_record(
    ctx: ServerContext,
    decision: TokenDecision,
    *,
    scope: str,
    family_id: str,
    parent_id: str | None,
    now: int,
) -> tuple[str, TokenRecord]:
    value = generate_refresh_token()
    record = decision.record(
        TOKEN_KIND_REFRESH,
        token_id=generate_token_id(),
        token_hash=ctx.hasher.hash(value),
        scope=scope,
        issued_at=now,
        expires_at=now + ctx.settings.refresh_token_lifetime,
        family_id=family_id,
        parent_id=parent_id,
        auth_time=decision.auth_time,
    )
    return value, record


def pair_response(access: IssuedToken, refresh_value: str | None) -> dict[str, Any]:
    body = access.response()
    if refresh_value is not None:
        body["refresh_token"] = refresh_value
    return body


async def build_pair(
    ctx: ServerContext, decision: TokenDecision, *, parent_id: str | None = None
) -> tuple[dict[str, Any], list[TokenRecord], IssuedToken]:
    """Sign a new grant's access token and make its refresh token (if the client
    may have one); both share the family. Nothing is recorded yet: the caller
    records the records in the same transaction as whatever it consumes."""
    family_id = decision.family_id or generate_token_id()
    decision = _with_family(decision, family_id)
    access = await ctx.issuer.sign_access_token(decision)
    records = [access.record]
    refresh_value = None
    if may_have_refresh_tokens(decision):
        refresh_value, refresh = new_refresh_record(
            ctx,
            decision,
            scope=access.scope,
            family_id=family_id,
            parent_id=parent_id,
            now=access.record.issued_at,
        )
        records.append(refresh)
    return pair_response(access, refresh_value), records, access


async def issue_pair(ctx: ServerContext, decision: TokenDecision) -> dict[str, Any]:
    """A new grant, recorded: access token and (if allowed) refresh token."""
    response, records, _ = await build_pair(ctx, decision)
    await ctx.storage.record_tokens(records)
    return response


def _with_family(decision: TokenDecision, family_id: str) -> TokenDecision:
    return replace(decision, family_id=family_id)


def encrypt_replay(ctx: ServerContext, old_value: str, response: dict[str, Any]) -> str:
    key = ctx.hasher.derive_key(_REPLAY_LABEL, old_value)
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(response).encode(), None)
    return base64.b64encode(nonce + sealed).decode()


def decrypt_replay(ctx: ServerContext, old_value: str, ciphertext: str) -> dict[str, Any] | None:
    key = ctx.hasher.derive_key(_REPLAY_LABEL, old_value)
    try:
        raw = base64.b64decode(ciphertext)
        plain = AESGCM(key).decrypt(raw[:12], raw[12:], None)
        data = json.loads(plain)
    except (InvalidTag, ValueError):
        return None
    return data if isinstance(data, dict) else None
