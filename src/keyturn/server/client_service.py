"""Client management operations shared by the admin API and the CLI.

One function per operation, so every front end has the same effects: above
all, deleting a client revokes its live tokens (durably, and onto the
deny-list) before the rows go, whichever front end asked. Errors are RFC
6749-style (`NotFoundError` 404, 409 for an existing id, 400 for a client
that fails validation), which the HTTP front end answers as they are and the
CLI prints.
"""

from __future__ import annotations

from typing import Any, Unpack

from keyturn.core.errors import InvalidRequestError
from keyturn.server import token_service
from keyturn.server.clients import (
    ClientOptions,
    NewClient,
    build_client,
    update_client,
    with_new_secret,
)
from keyturn.server.context import ServerContext
from keyturn.storage.records import Client, TokenRecord
from keyturn.storage.repository import ClientExistsError


async def create(ctx: ServerContext, **options: Unpack[ClientOptions]) -> NewClient:
    """Register a client; the returned secret is the only copy (only its hash is kept)."""
    try:
        new = build_client(ctx.hasher, **options)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    try:
        await ctx.storage.create_client(new.client)
    except ClientExistsError:
        raise InvalidRequestError(
            f"a client {new.client.client_id!r} exists already", status_code=409
        ) from None
    return new


async def update(ctx: ServerContext, client_id: str, **changes: Any) -> Client:
    """Change a client's fields (None = keep); every process sees it within the cache TTL."""
    client = await token_service.get_client(ctx, client_id)
    try:
        updated = update_client(client, **changes)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    await ctx.storage.update_client(updated)
    ctx.clients.forget(client_id)
    return updated


async def rotate_secret(
    ctx: ServerContext, client_id: str, *, overlap: int | None = None
) -> NewClient:
    """A new secret, returned once; the old one keeps working for ``overlap`` seconds.

    ``None`` takes ``KEYTURN_SECRET_ROTATION_OVERLAP``; 0 stops the old secret at
    once. A previous secret still in its overlap is dropped (two at most).
    Another process that has the client cached takes the new secret at once
    (a failed check reloads the record, `keyturn.server.client_auth`).
    """
    client = await token_service.get_client(ctx, client_id)
    seconds = ctx.settings.secret_rotation_overlap if overlap is None else overlap
    now = int(ctx.clock())
    try:
        new = with_new_secret(ctx.hasher, client, now=now, overlap=seconds)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    assert new.client.secret_hash is not None
    stored = await ctx.storage.rotate_client_secret(
        client_id, new.client.secret_hash, now, new.client.previous_secret_expires_at
    )
    ctx.clients.forget(client_id)
    if stored is None:  # deleted (or made public) since it was read
        raise token_service.NotFoundError(f"no client {client_id!r}")
    return NewClient(stored, new.secret)


async def expire_previous_secret(ctx: ServerContext, client_id: str) -> Client:
    """Stop accepting the client's previous secret now, e.g. after it leaked.

    Idempotent. Other processes that have the client cached may accept it for
    up to ``KEYTURN_CLIENT_CACHE_TTL`` seconds more.
    """
    client = await token_service.get_client(ctx, client_id)
    if client.is_public:
        raise InvalidRequestError("a public client has no secret")
    stored = await ctx.storage.expire_previous_secret(client_id, int(ctx.clock()))
    ctx.clients.forget(client_id)
    if stored is None:
        raise token_service.NotFoundError(f"no client {client_id!r}")
    return stored


async def delete(ctx: ServerContext, client_id: str) -> list[TokenRecord]:
    """Revoke every live token of the client, then delete it and its token rows.

    Revoking first records each revocation durably and publishes it to the
    deny-list, so a guard that verifies JWTs locally stops honouring them:
    deleting rows alone would leave them valid there until they expire.
    Returns the tokens that were revoked.
    """
    await token_service.get_client(ctx, client_id)
    revoked = await token_service.revoke_all(ctx, client_id=client_id, subject=None)
    await ctx.storage.delete_client(client_id)
    ctx.clients.forget(client_id)
    return revoked
