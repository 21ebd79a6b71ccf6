"""The SQLAlchemy implementation of the storage contract (SQLite, PostgreSQL).

Grants and endpoints talk to `protocol.Storage`, small async ports that deal
in the plain records of `records`; only this module knows SQL. The contract's
names are re-exported here so that older imports keep working. Core statements,
not the ORM, keep the token endpoint's hot path to one round-trip per insert.
Records become rows and back through `rows` (one rule for every table), every
token insert inside a transaction goes through `token_writer.append_tokens`,
and every read of records through `_first` / `_all`, except the two token
lookups introspection and revocation make, which `token_reader` answers on
the driver itself (SQLAlchemy when it cannot without waiting).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    Update,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keyturn.storage import schema
from keyturn.storage.health import ServiceHealth, database_fault
from keyturn.storage.protocol import ClientExistsError, Storage, TokenFilter, UserExistsError
from keyturn.storage.records import (
    AuthorizationCode,
    Client,
    Session,
    SigningKeyRecord,
    TokenRecord,
    User,
)
from keyturn.storage.rows import to_record, to_row
from keyturn.storage.token_reader import NotRead, create_token_reader, release_mappings
from keyturn.storage.token_writer import (
    RevokeBy,
    append_tokens,
    create_token_writer,
    denied_rows,
)

__all__ = ["ClientExistsError", "SqlStorage", "Storage", "TokenFilter", "UserExistsError"]

R = TypeVar("R")
T = TypeVar("T")


class SqlStorage:
    """`Storage` on an async SQLAlchemy engine.

    ``health`` follows the database from every statement: a fault marks it
    down (logged once), the next statement that works marks it up again.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.health = ServiceHealth("database", logging.getLogger("keyturn.storage"))
        self._token_writer = create_token_writer(engine)
        self._token_reader = create_token_reader(engine)
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "handle_error", self._on_error)
        event.listen(sync_engine, "after_cursor_execute", self._on_statement)
        event.listen(sync_engine, "commit", self._on_commit)

    async def probe(self) -> None:
        """One trivial statement; its outcome reaches ``health`` like any other's."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def _on_error(self, context: Any) -> None:
        if context.is_pre_ping:  # a stale pooled connection found and replaced: healing
            return
        exc = context.original_exception
        kind = database_fault(exc)
        if kind is not None:
            self.health.failed(exc, kind)

    def _on_statement(self, *_args: Any) -> None:
        self.health.succeeded(write=False)

    def _on_commit(self, *_args: Any) -> None:
        self.health.succeeded(write=True)

    async def close(self) -> None:
        await self._token_writer.close()
        if self._token_reader is not None:
            await self._token_reader.close()
        await self.engine.dispose()
        release_mappings()  # SQLite deletes a -shm file with its last connection

    async def _read_one(self, record_type: type[R], query: Select[Any]) -> R | None:
        async with self.engine.connect() as conn:
            return await _first(conn, record_type, query)

    async def _read_all(self, record_type: type[R], query: Select[Any]) -> list[R]:
        async with self.engine.connect() as conn:
            return await _all(conn, record_type, query)

    async def _insert(self, table: Table, record: Any) -> None:
        """Write one record as a new row of ``table``, in a transaction of its own."""
        async with self.engine.begin() as conn:
            await conn.execute(insert(table).values(**to_row(record)))

    # -- clients -----------------------------------------------------------
    async def get_client(self, client_id: str) -> Client | None:
        return await self._read_one(Client, _client_by_id(client_id))

    async def list_clients(self) -> list[Client]:
        c = schema.clients.c
        return await self._read_all(
            Client, select(schema.clients).order_by(c.created_at, c.client_id)
        )

    async def create_client(self, client: Client) -> None:
        async with self.engine.begin() as conn:
            existing = await conn.execute(
                select(schema.clients.c.client_id).where(
                    schema.clients.c.client_id == client.client_id
                )
            )
            if existing.first() is not None:
                raise ClientExistsError(client.client_id)
            await conn.execute(insert(schema.clients).values(**to_row(client)))

    async def update_client(self, client: Client) -> bool:
        """Write the client's settings; never its secrets, which only the two
        methods below change, so an update cannot undo a concurrent rotation."""
        values = to_row(client)
        for name in ("client_id", "created_at", *SECRET_COLUMNS):
            del values[name]
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(schema.clients)
                .where(schema.clients.c.client_id == client.client_id)
                .values(**values)
            )
        return bool(result.rowcount)

    async def rotate_client_secret(
        self, client_id: str, secret_hash: str, now: int, previous_expires_at: int | None
    ) -> Client | None:
        """Make ``secret_hash`` the current secret of a confidential client, in one statement.

        The current secret becomes the previous one, accepted until
        ``previous_expires_at`` (None: not at all); whatever previous secret
        there was is dropped. One UPDATE, whose right-hand sides read the row
        as it was, so two rotations at once chain instead of losing one.
        Returns the client as it is now, or None if there is no such client.
        """
        c = schema.clients.c
        keep = previous_expires_at is not None
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(schema.clients)
                .where(c.client_id == client_id, c.is_public.is_(False))
                .values(
                    secret_hash=secret_hash,
                    secret_created_at=now,
                    previous_secret_hash=c.secret_hash if keep else None,
                    previous_secret_created_at=c.secret_created_at if keep else None,
                    previous_secret_expires_at=previous_expires_at,
                    updated_at=now,
                )
            )
            if not result.rowcount:
                return None
            return await _first(conn, Client, _client_by_id(client_id))

    async def expire_previous_secret(self, client_id: str, now: int) -> Client | None:
        """Stop accepting the previous secret now (after a leak, say); None if no such client."""
        c = schema.clients.c
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.clients)
                .where(c.client_id == client_id, c.previous_secret_hash.is_not(None))
                .values(**dict.fromkeys(PREVIOUS_SECRET_COLUMNS), updated_at=now)
            )
            return await _first(conn, Client, _client_by_id(client_id))

    async def delete_client(self, client_id: str) -> bool:
        t = schema.tokens.c
        async with self.engine.begin() as conn:
            now = int(time.time())
            live = await _all(
                conn,
                TokenRecord,
                select(schema.tokens).where(
                    t.client_id == client_id, t.revoked_at.is_(None), t.expires_at > now
                ),
            )
            await _deny(conn, live, now)
            # Explicit, so it holds where the database enforces no cascade.
            await conn.execute(delete(schema.tokens).where(t.client_id == client_id))
            result = await conn.execute(
                delete(schema.clients).where(schema.clients.c.client_id == client_id)
            )
        return bool(result.rowcount)

    # -- tokens ------------------------------------------------------------
    async def record_token(self, token: TokenRecord) -> None:
        await self._write_tokens((token,))

    async def _on_driver(self, work: Awaitable[T]) -> T:
        """A token writer's or reader's call: it bypasses SQLAlchemy, whose error hook
        reports faults, so its faults are reported here."""
        try:
            return await work
        except Exception as exc:
            self._report_fault(exc)
            raise

    def _report_fault(self, exc: Exception) -> None:
        kind = database_fault(exc)
        if kind is not None:
            self.health.failed(exc, kind)

    async def _write_tokens(self, tokens: Sequence[TokenRecord]) -> None:
        await self._on_driver(self._token_writer.write(tokens))
        self.health.succeeded(write=True)

    async def get_token(self, token_id: str) -> TokenRecord | None:
        if self._token_reader is not None:
            found = await self._fast_read(self._token_reader.by_id(token_id))
            if not isinstance(found, NotRead):
                return found
        return await self._read_one(TokenRecord, _token_by_id(token_id))

    async def _fast_read(
        self, lookup: Awaitable[TokenRecord | NotRead | None]
    ) -> TokenRecord | NotRead | None:
        """The token reader's lookup, its faults reported as `_on_driver` does (inline:
        an introspection's every read comes here)."""
        try:
            found = await lookup
        except Exception as exc:
            self._report_fault(exc)
            raise
        if not isinstance(found, NotRead):
            self.health.succeeded(write=False)
        return found

    async def count_tokens(self, client_id: str | None = None) -> int:
        query = select(func.count()).select_from(schema.tokens)
        if client_id is not None:
            query = query.where(schema.tokens.c.client_id == client_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def record_tokens(self, tokens: Sequence[TokenRecord]) -> None:
        if tokens:
            await self._write_tokens(tokens)

    async def find_token_by_hash(self, token_hash: str) -> TokenRecord | None:
        """An opaque token (refresh, imported legacy) by its keyed hash.

        Access tokens are not indexed by hash: they are found by their ``jti``.
        """
        if self._token_reader is not None:
            found = await self._fast_read(self._token_reader.by_hash(token_hash))
            if not isinstance(found, NotRead):
                return found
        t = schema.tokens.c
        return await self._read_one(
            TokenRecord,
            select(schema.tokens).where(t.token_hash == token_hash, text(schema.LOOKED_UP_BY_HASH)),
        )

    async def list_tokens(
        self, flt: TokenFilter, now: int, limit: int, after: tuple[int, str] | None = None
    ) -> list[TokenRecord]:
        return await self._read_all(TokenRecord, listing_query(flt, now, limit, after))

    async def update_token(
        self, token_id: str, *, scope: str | None = None, expires_at: int | None = None
    ) -> TokenRecord | None:
        values: dict[str, Any] = {}
        if scope is not None:
            values["scope"] = scope
        if expires_at is not None:
            values["expires_at"] = expires_at
        async with self.engine.begin() as conn:
            if values:
                await conn.execute(
                    update(schema.tokens)
                    .where(schema.tokens.c.token_id == token_id)
                    .values(**values)
                )
            return await _first(conn, TokenRecord, _token_by_id(token_id))

    async def delete_token(self, token_id: str) -> TokenRecord | None:
        async with self.engine.begin() as conn:
            record = await _first(conn, TokenRecord, _token_by_id(token_id))
            if record is None:
                return None
            if record.revoked_at is None:  # a revoked one is on the deny-list already
                await _deny(conn, [record], int(time.time()))
            await conn.execute(delete(schema.tokens).where(schema.tokens.c.token_id == token_id))
        return record

    async def revoke_token(self, token_id: str, now: int) -> list[TokenRecord]:
        return await self._revoke_one("token_id", token_id, now)

    async def revoke_family(self, family_id: str, now: int) -> list[TokenRecord]:
        return await self._revoke_one("family_id", family_id, now)

    async def _revoke_one(self, by: RevokeBy, value: str, now: int) -> list[TokenRecord]:
        """RFC 7009's revocation: the token writer's (`_on_driver`), where it has one."""
        revoked = await self._on_driver(self._token_writer.revoke(by, value, now))
        if revoked is None:
            return await self._revoke_where([schema.tokens.c[by] == value], now)
        self.health.succeeded(write=True)
        return revoked

    async def revoke_matching(self, flt: TokenFilter, now: int) -> list[TokenRecord]:
        return await self._revoke_where(_conditions(flt, now), now)

    async def _revoke_where(
        self, conditions: list[ColumnElement[bool]], now: int
    ) -> list[TokenRecord]:
        """Revoke what matches and is not revoked yet; return what this call revoked.

        Live access tokens go on the durable deny-list in the same transaction,
        so no revocation can be committed and then miss Redis.
        """
        t = schema.tokens.c
        async with self.engine.begin() as conn:
            live = await _all(
                conn, TokenRecord, select(schema.tokens).where(*conditions, t.revoked_at.is_(None))
            )
            revoked: list[TokenRecord] = []
            for chunk in _chunks(live, 500):
                ids = [r.token_id for r in chunk]
                # RETURNING: only what this transaction revoked, not a racing one.
                won = set(
                    (
                        await conn.execute(
                            update(schema.tokens)
                            .where(t.token_id.in_(ids), t.revoked_at.is_(None))
                            .values(revoked_at=now)
                            .returning(t.token_id)
                        )
                    ).scalars()
                )
                mine = [_with_revoked(r, now) for r in chunk if r.token_id in won]
                await _deny(conn, mine, now)
                revoked.extend(mine)
        return revoked

    async def consume_token(self, token_id: str, now: int) -> bool:
        """Mark a single-use token used; exactly one concurrent caller wins."""
        async with self.engine.begin() as conn:
            result = await conn.execute(_consume_token(token_id, now))
        return result.rowcount == 1

    async def exchange_token(
        self,
        old_token_id: str,
        now: int,
        new_tokens: Sequence[TokenRecord],
        replay: tuple[str, int] | None = None,
    ) -> bool:
        """Consume a single-use token and record its successors in one transaction.

        ``replay`` is ``(ciphertext, expires_at)`` of the answer to keep for
        concurrent presenters of the same token (refresh rotation).

        Exactly one of several concurrent callers wins (the conditional update);
        a loser sees either nothing or the winner's whole result, replay
        included, never a consumed token without its successors.
        """
        async with self.engine.begin() as conn:
            if not await _consume_then_append(conn, _consume_token(old_token_id, now), new_tokens):
                return False
            if replay is not None:
                await conn.execute(
                    insert(schema.token_replays).values(
                        token_id=old_token_id, ciphertext=replay[0], expires_at=replay[1]
                    )
                )
        return True

    async def get_replay(self, token_id: str, now: int) -> str | None:
        r = schema.token_replays.c
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(r.ciphertext).where(r.token_id == token_id, r.expires_at >= now)
            )
            value = result.scalar_one_or_none()
        return str(value) if value is not None else None

    async def forget_expired(self, cutoff: int, now: int) -> None:
        """Replays, sessions and codes expired before ``cutoff``; deny-list entries
        and previous client secrets past their end at ``now``."""
        async with self.engine.begin() as conn:
            for table in (schema.token_replays, schema.sessions, schema.authorization_codes):
                await conn.execute(delete(table).where(table.c.expires_at < cutoff))
            # A deny-list entry is useless once its token has expired.
            d = schema.denylist.c
            await conn.execute(delete(schema.denylist).where(d.expires_at < now))
            # A previous client secret past its overlap is refused already; forget its hash.
            c = schema.clients.c
            await conn.execute(
                update(schema.clients)
                .where(c.previous_secret_expires_at <= now)
                .values(**dict.fromkeys(PREVIOUS_SECRET_COLUMNS))
            )

    async def purge_tokens(self, cutoff: int, batch: int) -> int:
        """Delete up to ``batch`` token rows expired or revoked before ``cutoff``, in
        one statement: the batch is never sent back and forth as a list of ids.

        The rows are found in the ``expires_at`` and ``revoked_at`` indexes, in
        their order. Asked with an OR, PostgreSQL scanned the table from its
        first page for each batch, past every row the batches before had
        deleted and VACUUM had not yet reclaimed (the backlog is the table's
        oldest rows): each batch cost more than the last. The revoked rows
        that have also expired are left to the first part, so the two never
        name a row twice and a full batch means more may be left.
        """
        purged = await self._on_driver(self._token_writer.purge(cutoff, batch))
        if purged is not None:
            self.health.succeeded(write=True)
            return purged
        t = schema.tokens.c
        expired = select(t.token_id).where(t.expires_at < cutoff).order_by(t.expires_at)
        revoked = (
            select(t.token_id)
            .where(t.revoked_at < cutoff, t.expires_at >= cutoff)
            .order_by(t.revoked_at)
        )
        parts = (expired.limit(batch).subquery(), revoked.limit(batch).subquery())
        either = union_all(*(select(part.c.token_id) for part in parts)).subquery()
        doomed = select(either.c.token_id).limit(batch)
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(schema.tokens).where(t.token_id.in_(doomed)))
        return int(result.rowcount)

    # -- the durable deny-list ------------------------------------------------
    async def pending_denials(self, limit: int) -> list[tuple[str, int]]:
        """``(jti, expires_at)`` of revocations not yet published to Redis, oldest first."""
        d = schema.denylist.c
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(d.token_id, d.expires_at)
                .where(d.published_at.is_(None))
                .order_by(d.revoked_at)
                .limit(limit)
            )
            return [(row[0], int(row[1])) for row in result]

    async def live_denials(self, now: int, after: str, limit: int) -> list[tuple[str, int]]:
        """Every unexpired revocation, published or not, in pages by ``jti``."""
        d = schema.denylist.c
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(d.token_id, d.expires_at)
                .where(d.expires_at > now, d.token_id > after)
                .order_by(d.token_id)
                .limit(limit)
            )
            return [(row[0], int(row[1])) for row in result]

    async def mark_published(self, token_ids: Sequence[str], now: int) -> None:
        d = schema.denylist.c
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.denylist).where(d.token_id.in_(token_ids)).values(published_at=now)
            )

    async def denylist_backlog(self) -> tuple[int, int | None]:
        """How many revocations wait to be published, and when the oldest was made."""
        d = schema.denylist.c
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(func.count(), func.min(d.revoked_at)).where(d.published_at.is_(None))
                )
            ).one()
        return int(row[0]), (int(row[1]) if row[1] is not None else None)

    # -- users, sessions, consents -------------------------------------------
    async def create_user(self, user: User) -> None:
        async with self.engine.begin() as conn:
            existing = await conn.execute(
                select(schema.users.c.user_id).where(schema.users.c.username == user.username)
            )
            if existing.first() is not None:
                raise UserExistsError(user.username)
            await conn.execute(insert(schema.users).values(**to_row(user)))

    async def get_user(self, user_id: str) -> User | None:
        return await self._read_one(
            User, select(schema.users).where(schema.users.c.user_id == user_id)
        )

    async def get_user_by_name(self, username: str) -> User | None:
        u = schema.users.c
        return await self._read_one(User, select(schema.users).where(u.username == username))

    async def list_users(self) -> list[User]:
        return await self._read_all(User, select(schema.users).order_by(schema.users.c.username))

    async def update_user(self, user: User) -> bool:
        values = to_row(user)
        del values["user_id"], values["created_at"]
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(schema.users).where(schema.users.c.user_id == user.user_id).values(**values)
            )
        return bool(result.rowcount)

    async def delete_user(self, user_id: str) -> bool:
        async with self.engine.begin() as conn:
            for table in (schema.sessions, schema.consents):
                await conn.execute(delete(table).where(table.c.user_id == user_id))
            result = await conn.execute(
                delete(schema.users).where(schema.users.c.user_id == user_id)
            )
        return bool(result.rowcount)

    async def create_session(self, session: Session) -> None:
        await self._insert(schema.sessions, session)

    async def get_session(self, session_hash: str, now: int) -> Session | None:
        c = schema.sessions.c
        return await self._read_one(
            Session,
            select(schema.sessions).where(c.session_hash == session_hash, c.expires_at > now),
        )

    async def delete_session(self, session_hash: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(schema.sessions).where(schema.sessions.c.session_hash == session_hash)
            )

    async def get_consent(self, user_id: str, client_id: str) -> str | None:
        c = schema.consents.c
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(c.scope).where(c.user_id == user_id, c.client_id == client_id)
            )
            value = result.scalar_one_or_none()
        return str(value) if value is not None else None

    async def save_consent(self, user_id: str, client_id: str, scope: str, now: int) -> None:
        c = schema.consents.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(schema.consents)
                .where(c.user_id == user_id, c.client_id == client_id)
                .values(scope=scope, updated_at=now)
            )
            if not result.rowcount:
                await conn.execute(
                    insert(schema.consents).values(
                        user_id=user_id, client_id=client_id, scope=scope, updated_at=now
                    )
                )

    # -- authorization codes -------------------------------------------------
    async def create_code(self, code: AuthorizationCode) -> None:
        await self._insert(schema.authorization_codes, code)

    async def find_code(self, code_hash: str) -> AuthorizationCode | None:
        c = schema.authorization_codes.c
        return await self._read_one(
            AuthorizationCode, select(schema.authorization_codes).where(c.code_hash == code_hash)
        )

    async def redeem_code(self, code_id: str, now: int, new_tokens: Sequence[TokenRecord]) -> bool:
        """Consume a code and record what it issued, atomically: one redemption wins."""
        c = schema.authorization_codes.c
        consume = (
            update(schema.authorization_codes)
            .where(c.code_id == code_id, c.consumed_at.is_(None), c.expires_at > now)
            .values(consumed_at=now)
        )
        async with self.engine.begin() as conn:
            return await _consume_then_append(conn, consume, new_tokens)

    # -- signing keys ------------------------------------------------------
    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        k = schema.signing_keys.c
        return await self._read_all(
            SigningKeyRecord, select(schema.signing_keys).order_by(k.activates_at, k.created_at)
        )

    async def add_signing_key(self, key: SigningKeyRecord) -> None:
        await self._insert(schema.signing_keys, key)

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


def listing_query(
    flt: TokenFilter, now: int, limit: int, after: tuple[int, str] | None = None
) -> Select[Any]:
    """A page of tokens, newest first, ordered by (issued_at, token_id): stable under
    inserts. Each filter has an index that yields its rows in this order (0010)."""
    t = schema.tokens.c
    query = select(schema.tokens).where(*_conditions(flt, now))
    if after is not None:
        issued_at, token_id = after
        # The range on issued_at alone lets the index start at the cursor; as
        # one OR, SQLite read every newer row first (2.5 s deep in 1 M rows).
        query = query.where(
            t.issued_at <= issued_at, or_(t.issued_at < issued_at, t.token_id < token_id)
        )
    return query.order_by(t.issued_at.desc(), t.token_id.desc()).limit(limit)


def _conditions(flt: TokenFilter, now: int) -> list[ColumnElement[bool]]:
    t = schema.tokens.c
    out: list[ColumnElement[bool]] = []
    if flt.client_id is not None:
        out.append(t.client_id == flt.client_id)
    if flt.subject is not None:
        out.append(t.subject == flt.subject)
    if flt.kinds is not None:
        out.append(t.kind.in_(flt.kinds))
    if flt.active is True:
        out.extend([t.revoked_at.is_(None), t.expires_at > now])
    elif flt.active is False:
        out.append(or_(t.revoked_at.is_not(None), t.expires_at <= now))
    return out


async def _first(conn: AsyncConnection, record_type: type[R], query: Select[Any]) -> R | None:
    """The first row ``query`` selects, as a record; None if it selects none."""
    row = (await conn.execute(query)).mappings().first()
    return to_record(record_type, row) if row else None


async def _all(conn: AsyncConnection, record_type: type[R], query: Select[Any]) -> list[R]:
    return [to_record(record_type, row) for row in (await conn.execute(query)).mappings()]


def _client_by_id(client_id: str) -> Select[Any]:
    return select(schema.clients).where(schema.clients.c.client_id == client_id)


def _token_by_id(token_id: str) -> Select[Any]:
    return select(schema.tokens).where(schema.tokens.c.token_id == token_id)


def _consume_token(token_id: str, now: int) -> Update:
    """Mark a live single-use token used: the update only one concurrent caller wins."""
    t = schema.tokens.c
    return (
        update(schema.tokens)
        .where(t.token_id == token_id, t.revoked_at.is_(None), t.expires_at > now)
        .values(revoked_at=now)
    )


async def _consume_then_append(
    conn: AsyncConnection, consume: Update, new_tokens: Sequence[TokenRecord]
) -> bool:
    """Run ``consume`` (a code or token used once) and record what it issued, or nothing.

    The loser of a race updates no row and writes nothing: exactly one
    redemption wins, and nobody sees it used without its successors.
    """
    if (await conn.execute(consume)).rowcount != 1:
        await conn.rollback()
        return False
    await append_tokens(conn, new_tokens)
    return True


async def _deny(conn: Any, records: Sequence[TokenRecord], now: int) -> None:
    """Put the live access tokens among ``records`` on the durable deny-list (unpublished)."""
    rows = [
        {"token_id": token_id, "revoked_at": revoked_at, "expires_at": expires_at}
        for token_id, revoked_at, expires_at in denied_rows(records, now)
    ]
    if rows:
        await conn.execute(insert(schema.denylist), rows)


def _chunks(items: list[TokenRecord], size: int) -> Iterable[list[TokenRecord]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _with_revoked(record: TokenRecord, now: int) -> TokenRecord:
    return replace(record, revoked_at=now)


PREVIOUS_SECRET_COLUMNS = (
    "previous_secret_hash",
    "previous_secret_created_at",
    "previous_secret_expires_at",
)
SECRET_COLUMNS = ("secret_hash", "secret_created_at", *PREVIOUS_SECRET_COLUMNS)
