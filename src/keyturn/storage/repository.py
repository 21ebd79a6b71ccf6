"""The storage contract and its SQLAlchemy implementation (SQLite, PostgreSQL).

Grants and endpoints talk to `Storage`, a small async protocol that deals in
the plain records of `records`; only this module knows SQL. Core statements,
not the ORM, keep the token endpoint's hot path to one round-trip per insert.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from keyturn.storage import schema
from keyturn.storage.records import Client, SigningKeyRecord, TokenRecord


class Storage(Protocol):
    async def get_client(self, client_id: str) -> Client | None: ...
    async def list_clients(self) -> list[Client]: ...
    async def create_client(self, client: Client) -> None: ...
    async def update_client(self, client: Client) -> bool: ...
    async def delete_client(self, client_id: str) -> bool: ...
    async def record_token(self, token: TokenRecord) -> None: ...
    async def get_token(self, token_id: str) -> TokenRecord | None: ...
    async def count_tokens(self, client_id: str | None = None) -> int: ...
    async def list_signing_keys(self) -> list[SigningKeyRecord]: ...
    async def add_signing_key(self, key: SigningKeyRecord) -> None: ...
    async def delete_signing_key(self, kid: str) -> bool: ...
    async def last_token_expiry(self, kid: str) -> int | None: ...


class ClientExistsError(Exception):
    """A client with that id exists already."""


class SqlStorage:
    """`Storage` on an async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def close(self) -> None:
        await self.engine.dispose()

    # -- clients -----------------------------------------------------------
    async def get_client(self, client_id: str) -> Client | None:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(schema.clients).where(schema.clients.c.client_id == client_id)
            )
            row = result.mappings().first()
        return _client(row) if row else None

    async def list_clients(self) -> list[Client]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(schema.clients).order_by(
                    schema.clients.c.created_at, schema.clients.c.client_id
                )
            )
            return [_client(row) for row in result.mappings()]

    async def create_client(self, client: Client) -> None:
        async with self.engine.begin() as conn:
            existing = await conn.execute(
                select(schema.clients.c.client_id).where(
                    schema.clients.c.client_id == client.client_id
                )
            )
            if existing.first() is not None:
                raise ClientExistsError(client.client_id)
            await conn.execute(insert(schema.clients).values(**_client_row(client)))

    async def update_client(self, client: Client) -> bool:
        values = _client_row(client)
        del values["client_id"], values["created_at"]
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(schema.clients)
                .where(schema.clients.c.client_id == client.client_id)
                .values(**values)
            )
        return bool(result.rowcount)

    async def delete_client(self, client_id: str) -> bool:
        async with self.engine.begin() as conn:
            # Explicit, so it holds where the database enforces no cascade.
            await conn.execute(delete(schema.tokens).where(schema.tokens.c.client_id == client_id))
            result = await conn.execute(
                delete(schema.clients).where(schema.clients.c.client_id == client_id)
            )
        return bool(result.rowcount)

    # -- tokens ------------------------------------------------------------
    async def record_token(self, token: TokenRecord) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(schema.tokens).values(**_token_row(token)))

    async def get_token(self, token_id: str) -> TokenRecord | None:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(schema.tokens).where(schema.tokens.c.token_id == token_id)
            )
            row = result.mappings().first()
        return _token(row) if row else None

    async def count_tokens(self, client_id: str | None = None) -> int:
        query = select(func.count()).select_from(schema.tokens)
        if client_id is not None:
            query = query.where(schema.tokens.c.client_id == client_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    # -- signing keys ------------------------------------------------------
    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(schema.signing_keys).order_by(
                    schema.signing_keys.c.activates_at, schema.signing_keys.c.created_at
                )
            )
            return [
                SigningKeyRecord(
                    kid=row["kid"],
                    alg=row["alg"],
                    private_key=row["private_key"],
                    public_jwk=dict(row["public_jwk"]),
                    created_at=row["created_at"],
                    activates_at=row["activates_at"],
                )
                for row in result.mappings()
            ]

    async def add_signing_key(self, key: SigningKeyRecord) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(schema.signing_keys).values(
                    kid=key.kid,
                    alg=key.alg,
                    private_key=key.private_key,
                    public_jwk=key.public_jwk,
                    created_at=key.created_at,
                    activates_at=key.activates_at,
                )
            )

    async def delete_signing_key(self, kid: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(schema.signing_keys).where(schema.signing_keys.c.kid == kid)
            )
        return bool(result.rowcount)

    async def last_token_expiry(self, kid: str) -> int | None:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(func.max(schema.tokens.c.expires_at)).where(schema.tokens.c.kid == kid)
            )
            value = result.scalar_one_or_none()
        return int(value) if value is not None else None


def _tuple(value: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(value or ())


def _client(row: RowMapping) -> Client:
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        is_public=bool(row["is_public"]),
        grant_types=_tuple(row["grant_types"]),
        scopes=_tuple(row["scopes"]),
        audiences=_tuple(row["audiences"]),
        redirect_uris=_tuple(row["redirect_uris"]),
        auth_methods=_tuple(row["auth_methods"]),
        access_token_lifetime=row["access_token_lifetime"],
        rate_limit=row["rate_limit"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _client_row(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "secret_hash": client.secret_hash,
        "is_public": client.is_public,
        "grant_types": list(client.grant_types),
        "scopes": list(client.scopes),
        "audiences": list(client.audiences),
        "redirect_uris": list(client.redirect_uris),
        "auth_methods": list(client.auth_methods),
        "access_token_lifetime": client.access_token_lifetime,
        "rate_limit": client.rate_limit,
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }


def _token(row: RowMapping) -> TokenRecord:
    return TokenRecord(
        token_id=row["token_id"],
        token_hash=row["token_hash"],
        kind=row["kind"],
        client_id=row["client_id"],
        subject=row["subject"],
        scope=row["scope"],
        audience=_tuple(row["audience"]),
        grant_type=row["grant_type"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        family_id=row["family_id"],
        parent_id=row["parent_id"],
        kid=row["kid"],
    )


def _token_row(token: TokenRecord) -> dict[str, Any]:
    return {
        "token_id": token.token_id,
        "token_hash": token.token_hash,
        "kind": token.kind,
        "client_id": token.client_id,
        "subject": token.subject,
        "scope": token.scope,
        "audience": list(token.audience),
        "grant_type": token.grant_type,
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "family_id": token.family_id,
        "parent_id": token.parent_id,
        "kid": token.kid,
    }
