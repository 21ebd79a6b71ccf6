"""Token management operations shared by the revocation endpoint, the admin API and the CLI.

Each operation takes the server context and plain values, carries out its
effects (storage, deny-list) and returns records, so the HTTP and command-line
front ends stay thin and cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from keyturn.core.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from keyturn.core.jwt_claims import unverified_jti
from keyturn.server.context import ServerContext
from keyturn.server.issuance import IssuedToken, TokenDecision
from keyturn.server.request_body import is_storable
from keyturn.server.scopes import grant_audience, grant_scopes
from keyturn.server.secrets import generate_token_id, legacy_lookup_value
from keyturn.storage.records import (
    TOKEN_KIND_ACCESS,
    TOKEN_KIND_LEGACY,
    TOKEN_KIND_REFRESH,
    Client,
    TokenRecord,
)
from keyturn.storage.repository import TokenFilter

log = logging.getLogger("keyturn.server")

MAX_PAGE = 200


class NotFoundError(InvalidRequestError):
    """The token or client named in the path does not exist (404)."""

    status_code = 404


@dataclass(frozen=True, slots=True)
class TokenPage:
    items: list[TokenRecord]
    next_cursor: str | None


def encode_cursor(record: TokenRecord) -> str:
    raw = json.dumps([record.issued_at, record.token_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


INT64 = range(-(2**63), 2**63)
MAX_TOKEN_ID = 128


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The ``(issued_at, token_id)`` after which a page starts, from an opaque cursor.

    A cursor comes back from the client, so it is checked as any input: an
    integer the database's BIGINT holds (``bool`` is an ``int`` subclass, so
    the type is compared exactly) and a short id that UTF-8 and PostgreSQL
    text can store (no lone surrogate, no NUL).
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        issued_at, token_id = json.loads(raw)
        if type(issued_at) is not int or issued_at not in INT64:
            raise ValueError
        if not isinstance(token_id, str) or not 0 < len(token_id) <= MAX_TOKEN_ID:
            raise ValueError
        if not is_storable(token_id):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InvalidRequestError("the cursor is not one this server handed out") from None
    return issued_at, token_id


async def list_tokens(
    ctx: ServerContext, flt: TokenFilter, limit: int = 50, cursor: str | None = None
) -> TokenPage:
    limit = max(1, min(limit, MAX_PAGE))
    after = decode_cursor(cursor) if cursor else None
    items = await ctx.storage.list_tokens(flt, int(ctx.clock()), limit + 1, after)
    more = len(items) > limit
    items = items[:limit]
    return TokenPage(items, encode_cursor(items[-1]) if more and items else None)


async def get_token(ctx: ServerContext, token_id: str) -> TokenRecord:
    record = await ctx.storage.get_token(token_id)
    if record is None:
        raise NotFoundError(f"no token with id {token_id!r}")
    return record


async def find_by_value(ctx: ServerContext, token: str) -> TokenRecord | None:
    """A token by its value: Keyturn's own, else one imported from a legacy server.

    An access token is found by its ``jti`` and must be the token recorded
    under it (`TokenIssuer.recorded_as`); opaque tokens are found by their
    keyed hash (see migration 0007 for why the two differ). The record is read
    every time, so liveness is exact; only the ``jti`` of a token verified
    before comes from memory (`verified_tokens`).
    """
    known = ctx.issuer.verified.get(token)
    jti = known.jti if known is not None else unverified_jti(token)
    if jti is not None:
        record = await ctx.storage.get_token(jti)
        if record is not None and await ctx.issuer.recorded_as(token, record, known):
            return record
    record = await ctx.storage.find_token_by_hash(ctx.hasher.hash(token))
    if record is None:
        record = await ctx.storage.find_token_by_hash(ctx.hasher.hash(legacy_lookup_value(token)))
    return record


def regrant_scopes(record: TokenRecord, client: Client) -> tuple[str, ...]:
    """A token's scopes for a successor token, if the client still has them all."""
    try:
        return grant_scopes(tuple(record.scope.split()), client.scopes)
    except InvalidScopeError:
        raise InvalidGrantError("the client no longer has every scope of this token") from None


async def get_client(ctx: ServerContext, client_id: str) -> Client:
    client = await ctx.storage.get_client(client_id)
    if client is None:
        raise NotFoundError(f"no client {client_id!r}")
    return client


async def revoke(ctx: ServerContext, record: TokenRecord) -> list[TokenRecord]:
    """Revoke one token; a refresh token takes its whole family with it (RFC 7009 §2.1)."""
    now = int(ctx.clock())
    if record.kind == TOKEN_KIND_REFRESH and record.family_id:
        revoked = await ctx.storage.revoke_family(record.family_id, now)
    else:
        revoked = await ctx.storage.revoke_token(record.token_id, now)
    await ctx.denylist.add(revoked)
    return revoked


async def revoke_all(
    ctx: ServerContext,
    *,
    client_id: str | None,
    subject: str | None,
    access_tokens_only: bool = False,
) -> list[TokenRecord]:
    """Revoke every live token of a client and/or subject (Square's revoke-all)."""
    if client_id is None and subject is None:
        raise InvalidRequestError("name a client_id, a subject or both")
    kinds = (TOKEN_KIND_ACCESS,) if access_tokens_only else None
    flt = TokenFilter(client_id=client_id, subject=subject, kinds=kinds, active=True)
    revoked = await ctx.storage.revoke_matching(flt, int(ctx.clock()))
    await ctx.denylist.add(revoked)
    return revoked


async def delete(ctx: ServerContext, token_id: str) -> TokenRecord:
    record = await ctx.storage.delete_token(token_id)
    if record is None:
        raise NotFoundError(f"no token with id {token_id!r}")
    if record.is_active(ctx.clock()):
        await ctx.denylist.add([record])
    return record


async def update(
    ctx: ServerContext,
    token_id: str,
    *,
    scopes: Sequence[str] | None = None,
    expires_at: int | None = None,
) -> TokenRecord:
    """Change what introspection and the admin API report for a token.

    A JWT's own claims cannot change after signing: guards that verify the JWT
    alone still see the original scope and ``exp``; revocation-aware guards and
    introspection see the update.
    """
    record = await get_token(ctx, token_id)
    scope = None
    if scopes is not None:
        client = await get_client(ctx, record.client_id)
        scope = " ".join(grant_scopes(tuple(scopes), client.scopes)) if scopes else ""
    if expires_at is not None and expires_at <= record.issued_at:
        raise InvalidRequestError("expires_at must be after the token was issued")
    updated = await ctx.storage.update_token(token_id, scope=scope, expires_at=expires_at)
    assert updated is not None
    return updated


async def create(
    ctx: ServerContext,
    *,
    client_id: str,
    subject: str | None = None,
    scopes: Sequence[str] | None = None,
    audience: Sequence[str] | None = None,
    lifetime: int | None = None,
    grant_type: str = "client_credentials",
) -> IssuedToken:
    """Mint an access token directly (Authlete's token create); shown once."""
    client = await get_client(ctx, client_id)
    granted = grant_scopes(tuple(scopes or ()), client.scopes)
    aud = grant_audience(
        " ".join(audience) if audience else None, client.audiences, ctx.settings.audience
    )
    if lifetime is not None and lifetime <= 0:
        raise InvalidRequestError("lifetime must be a positive number of seconds")
    decision = TokenDecision(
        client=client,
        subject=subject or client.client_id,
        scopes=granted,
        audience=aud,
        grant_type=grant_type,
        lifetime=lifetime or client.access_token_lifetime or ctx.settings.access_token_lifetime,
    )
    return await ctx.issuer.issue_access_token(decision)


async def renew(ctx: ServerContext, token_id: str) -> IssuedToken:
    """A fresh access token like one that is about to expire (Square's renew).

    Allowed only inside the renew window, so renewing cannot keep a token alive
    for ever without anyone re-authenticating; the old token stays valid until
    its own expiry so requests in flight are not cut.
    """
    record = await get_token(ctx, token_id)
    now = int(ctx.clock())
    if record.kind != TOKEN_KIND_ACCESS:
        raise InvalidRequestError("only access tokens are renewed; refresh tokens rotate")
    if not record.is_active(now):
        raise InvalidGrantError("the token is expired or revoked; get a new one")
    remaining = record.expires_at - now
    window = ctx.settings.renew_window
    if remaining > window:
        raise InvalidRequestError(
            f"the token has {remaining} s left; it can be renewed in its last {window} s"
        )
    return await successor(ctx, record)


async def successor(ctx: ServerContext, record: TokenRecord) -> IssuedToken:
    """A fresh access token like ``record`` (same client, subject, scopes, audience,
    grant and family), for whichever renew policy allowed it."""
    client = await get_client(ctx, record.client_id)
    scopes = regrant_scopes(record, client)
    decision = TokenDecision(
        client=client,
        subject=record.subject or client.client_id,
        scopes=scopes,
        audience=record.audience,
        grant_type=record.grant_type,
        lifetime=client.access_token_lifetime or ctx.settings.access_token_lifetime,
        family_id=record.family_id,
    )
    return await ctx.issuer.issue_access_token(decision)


@dataclass(frozen=True, slots=True)
class LegacyToken:
    """A token from another server: its value, or the SHA-256 hex of its value."""

    client_id: str
    expires_at: int
    token: str | None = None
    token_sha256: str | None = None
    subject: str | None = None
    scopes: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()


async def import_legacy(ctx: ServerContext, tokens: Sequence[LegacyToken]) -> list[TokenRecord]:
    """Record legacy tokens so they keep working until exchanged (migration grant).

    Imported tokens introspect as active and can be revoked like Keyturn's own;
    only their keyed hash is stored, whichever form they arrive in.
    """
    now = int(ctx.clock())
    records: list[TokenRecord] = []
    clients: dict[str, Client] = {}
    for item in tokens:
        if (item.token is None) == (item.token_sha256 is None):
            raise InvalidRequestError("give each token as token or as token_sha256, not both")
        if item.token is not None:
            lookup = legacy_lookup_value(item.token)
        else:
            digest = (item.token_sha256 or "").lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise InvalidRequestError("token_sha256 must be 64 hex digits")
            lookup = "legacy-sha256:" + digest
        if item.client_id not in clients:
            clients[item.client_id] = await get_client(ctx, item.client_id)
        if item.expires_at <= now:
            raise InvalidRequestError("an imported token must not be expired already")
        records.append(
            TokenRecord(
                token_id=generate_token_id(),
                token_hash=ctx.hasher.hash(lookup),
                kind=TOKEN_KIND_LEGACY,
                client_id=item.client_id,
                subject=item.subject,
                scope=" ".join(item.scopes),
                audience=item.audience,
                grant_type="legacy",
                issued_at=now,
                expires_at=item.expires_at,
            )
        )
    hashes = [r.token_hash for r in records]
    if len(set(hashes)) != len(hashes):
        raise InvalidRequestError("the same token appears twice in the import")
    for record in records:
        if await ctx.storage.find_token_by_hash(record.token_hash) is not None:
            raise InvalidRequestError("a token in this import was imported before", status_code=409)
    await ctx.storage.record_tokens(records)
    return records


PURGE_REST = 3.0
"""After each full batch a purge rests this many times as long as the batch took.

Batches back to back kept the database busy for the whole purge: on SQLite
every token insert met the purge's write lock and waited in SQLite's busy
back-off, on PostgreSQL the deletes took a core from the token endpoint. A
1,000,000-row backlog (benchmarks/table_growth.py, c=16) took issuance's p99
from 38 to 167 ms on SQLite and from 20 to 49 ms on PostgreSQL. Resting as
long as it works (1.0) left the database to requests half the time. Once a
batch became one statement on SQLite's writer thread, it purged 3x as fast,
and issuance's p99 rose 3x during it (one run: 11.8 -> 35.7 ms); resting
three times as long, with batches of 100, it rose 1.5x (13.7 -> 20.1 ms) and
purged 4,000 rows a second, about as fast as before."""


@dataclass(frozen=True)
class Purged:
    rows: int
    complete: bool
    """False when it stopped before every dead row was gone (``max_batches``,
    ``stop``); the next purge goes on from there."""


async def purge(
    ctx: ServerContext,
    *,
    max_batches: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> Purged:
    """Delete rows expired or revoked longer than the retention ago, batch by
    batch, resting between batches (`PURGE_REST`).

    ``stop`` is asked before each batch after the first: the admin API's purge
    stops once its server drains, so a long purge never holds up a shutdown
    (it held it for up to ``KEYTURN_SHUTDOWN_TIMEOUT`` on SQLite).
    """
    now = int(ctx.clock())
    cutoff = now - ctx.settings.purge_retention
    batch = ctx.settings.purge_batch
    await ctx.storage.forget_expired(cutoff, now)
    total = 0
    batches = 0
    while True:
        started = time.monotonic()
        removed = await ctx.storage.purge_tokens(cutoff, batch)
        total += removed
        batches += 1
        if removed < batch:
            return Purged(total, complete=True)
        if batches == max_batches:
            return Purged(total, complete=False)
        await anyio.sleep((time.monotonic() - started) * PURGE_REST)
        if stop is not None and stop():
            return Purged(total, complete=False)
