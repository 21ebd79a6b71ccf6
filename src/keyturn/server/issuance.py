"""Turn a grant's decision into a signed, recorded access token.

The grant decides *what* (subject, scopes, audience, lifetime); this service
does the effects: build RFC 9068 claims, sign with the current key, record the
token by identifier and keyed hash (never in clear), and shape the response.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from keyturn.keys.jwt import Signer
from keyturn.keys.keyring import KeyRing
from keyturn.server import metrics, tracing
from keyturn.server.secrets import Hasher, generate_token_id
from keyturn.server.verified_tokens import Verified, VerifiedTokens
from keyturn.storage.records import TOKEN_KIND_ACCESS, Client, TokenRecord
from keyturn.storage.repository import Storage


@dataclass(frozen=True, slots=True)
class TokenDecision:
    """What a grant allows: pure data, no effects."""

    client: Client
    subject: str
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    grant_type: str
    lifetime: int
    family_id: str | None = None
    auth_time: int | None = None
    """When the user authenticated (user grants); kept on refresh tokens for ID tokens."""

    def record(
        self,
        kind: str,
        *,
        token_id: str,
        token_hash: str,
        scope: str,
        issued_at: int,
        expires_at: int,
        **links: Unpack[TokenLinks],
    ) -> TokenRecord:
        """The stored record of a token issued on this decision: its client, subject,
        audience and grant come from here, the rest from the token itself."""
        return TokenRecord(
            token_id=token_id,
            token_hash=token_hash,
            kind=kind,
            client_id=self.client.client_id,
            subject=self.subject,
            scope=scope,
            audience=self.audience,
            grant_type=self.grant_type,
            issued_at=issued_at,
            expires_at=expires_at,
            **links,
        )


class TokenLinks(TypedDict, total=False):
    """What ties a token record to others and to its signing key (None if absent)."""

    family_id: str | None
    parent_id: str | None
    kid: str | None
    auth_time: int | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    record: TokenRecord

    def response(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


@dataclass(slots=True)
class _Batch:
    done: asyncio.Future[None]
    records: list[TokenRecord] = field(default_factory=list)
    errors: list[Exception | None] = field(default_factory=list)


class TokenRecorder:
    """Group commit for token records: one transaction for many concurrent tokens.

    Every token is still recorded before its response is sent: a request waits
    until the transaction holding its record has committed. What changes is
    that records arriving while a write is in flight are collected and written
    together by the next write (one multi-row insert, one commit) instead of
    each taking its own connection, transaction and commit -- on SQLite, many
    concurrent writers also meant lock waits in SQLite's busy handler.

    A batch is written by a task of its own, started with its first record: the
    task runs once the requests that are ready have joined, and waits for the
    write before it, so only one write runs at a time per process. A request
    that is cancelled while it waits leaves the write to go on for the others.
    If a multi-row write fails, each record is retried on its own so every
    request gets its own outcome. (asyncio's own primitives, not anyio's: the
    server runs on asyncio, and they took 4 % off a token request's
    instructions, measured with valgrind.)
    """

    def __init__(self, storage: Storage, max_batch: int = 256) -> None:
        self._storage = storage
        self._max_batch = max_batch
        self._open: _Batch | None = None
        self._write_lock = asyncio.Lock()
        self._writers: set[asyncio.Task[None]] = set()

    async def record(self, record: TokenRecord) -> None:
        await self.submit(record)

    def submit(self, record: TokenRecord) -> Coroutine[Any, Any, None]:
        """Add the record to a batch now; the coroutine returned waits for its outcome.

        The batch's write may start before the caller awaits the outcome (on
        the loop's next turn), which lets it overlap other work. A caller that
        gives up must ``close()`` the coroutine; the write goes on regardless.
        """
        batch = self._open
        if batch is None or len(batch.records) >= self._max_batch:
            loop = asyncio.get_running_loop()
            batch = self._open = _Batch(loop.create_future())
            writer = loop.create_task(self._flush(batch))
            self._writers.add(writer)  # the loop keeps only a weak reference
            writer.add_done_callback(self._writers.discard)
        index = len(batch.records)
        batch.records.append(record)
        batch.errors.append(None)
        return self._outcome(batch, index)

    @staticmethod
    async def _outcome(batch: _Batch, index: int) -> None:
        await asyncio.shield(batch.done)
        error = batch.errors[index]
        if error is not None:
            raise error

    async def _flush(self, batch: _Batch) -> None:
        async with self._write_lock:
            if self._open is batch:
                self._open = None  # closed: later records start the next batch
            await self._write(batch)

    @tracing.traced("keyturn.token_write", attributes=lambda _, b: {"keyturn.rows": len(b.records)})
    async def _write(self, batch: _Batch) -> None:
        try:
            started = time.perf_counter()
            if len(batch.records) == 1:
                await self._storage.record_token(batch.records[0])
            else:
                await self._storage.record_tokens(batch.records)
            metrics.token_write(len(batch.records), time.perf_counter() - started)
        except Exception as exc:
            if len(batch.records) == 1:
                batch.errors[0] = exc
            else:  # the transaction rolled back: find the record(s) at fault
                for i, record in enumerate(batch.records):
                    try:
                        await self._storage.record_token(record)
                    except Exception as one:
                        batch.errors[i] = one
        except BaseException:
            lost = RuntimeError("the token record was not written")
            batch.errors[:] = [lost] * len(batch.records)
            raise
        finally:
            batch.done.set_result(None)


class TokenIssuer:
    def __init__(
        self,
        storage: Storage,
        keyring: KeyRing,
        hasher: Hasher,
        issuer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._keyring = keyring
        self._hasher = hasher
        self._issuer = issuer
        self._clock = clock
        self._recorder = TokenRecorder(storage)
        self._in_progress = 0  # issuances between their start and their answer
        self.verified: VerifiedTokens[Verified] = VerifiedTokens()
        """Access tokens whose signature `recorded_as` has checked (introspection)."""

    async def issue_access_token(self, decision: TokenDecision) -> IssuedToken:
        """Sign and record a token; the record is written while it is signed.

        The record holds the keyed hash of the signing input (header and
        payload), known before the signature, so the database write and the
        signature overlap: alone on PostgreSQL, an RS256 token no longer waits
        for its insert after its signature. The write starts first: its task
        is scheduled before the signature, which the key ring makes after the
        loop's turn (`keyturn.keys.signing_batch`) or on a helper. The token
        is answered only once both are done. Lookups by value match the
        recorded hash and check the signature (`token_service.find_by_value`).
        """
        self._in_progress += 1
        try:
            signer, signing_input, record = await self._prepare(decision)
            busy = self._in_progress > 1
            recorded = self._recorder.submit(record)
            try:
                token = await self._sign(signer, signing_input, busy)
            except BaseException:
                recorded.close()  # its write goes on; the token is never handed out
                raise
            await recorded
        finally:
            self._in_progress -= 1
        metrics.token_issued(decision.grant_type, signer.alg, decision.client.client_id)
        return IssuedToken(token, decision.lifetime, record.scope, record)

    @tracing.traced("keyturn.sign", attributes=lambda _, signer, *a: {"keyturn.alg": signer.alg})
    async def _sign(self, signer: Signer, signing_input: bytes, busy: bool) -> str:
        started = time.perf_counter()
        token = await self._keyring.sign_prepared(signer, signing_input, busy=busy)
        metrics.signed(signer.alg, time.perf_counter() - started)
        return token

    async def recorded_as(
        self, token: str, record: TokenRecord, known: Verified | None = None
    ) -> bool:
        """Whether ``token`` is the very access token ``record`` was written for.

        The record holds the keyed hash of the signing input, a 128-bit
        `Hasher.short_hash` (records of earlier versions hold the whole
        `Hasher.hash` of it, or of the whole token, and still match). A token
        with a forged signature shares it, so the signature is checked too,
        with the key the record names.
        ``known`` is what `verified` holds for ``token``, if the caller has it.
        """
        # Three segments, always: the signing input alone ("header.payload")
        # would otherwise pass as a whole token of an earlier version.
        if record.kind != TOKEN_KIND_ACCESS or token.count(".") != 2:
            return False
        signing_input = token.rpartition(".")[0]
        if self._hasher.verify(signing_input, record.token_hash):
            return record.kid is not None and await self._signed_by(
                token, record, record.kid, known
            )
        return self._hasher.verify(token, record.token_hash)

    async def _signed_by(
        self, token: str, record: TokenRecord, kid: str, known: Verified | None
    ) -> bool:
        """Whether the key held for ``kid`` signed ``token``: remembered once checked
        (`verified_tokens`), for as long as that very key is held."""
        signer = await self._keyring.verifier(kid)
        if signer is None:
            return False
        if known is None:
            known = self.verified.get(token)
        if known is not None and known.signer is signer and known.kid == kid:
            return True
        if not signer.verify(token):
            return False
        self.verified.put(token, Verified(record.token_id, kid, signer))
        return True

    async def sign_access_token(self, decision: TokenDecision) -> IssuedToken:
        """Sign without recording: for grants that record in their own transaction."""
        self._in_progress += 1
        try:
            signer, signing_input, record = await self._prepare(decision)
            busy = self._in_progress > 1
            token = await self._sign(signer, signing_input, busy)
        finally:
            self._in_progress -= 1
        metrics.token_issued(decision.grant_type, signer.alg, decision.client.client_id)
        return IssuedToken(token, decision.lifetime, record.scope, record)

    async def _prepare(self, decision: TokenDecision) -> tuple[Signer, bytes, TokenRecord]:
        now = int(self._clock())
        jti = generate_token_id()
        scope = " ".join(decision.scopes)
        expires_at = now + decision.lifetime
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": decision.subject,
            "aud": decision.audience[0] if len(decision.audience) == 1 else list(decision.audience),
            "client_id": decision.client.client_id,
            "iat": now,
            "exp": expires_at,
            "jti": jti,
        }
        if scope:
            claims["scope"] = scope
        signer, signing_input = await self._keyring.prepare(claims)
        record = decision.record(
            TOKEN_KIND_ACCESS,
            token_id=jti,
            token_hash=self._hasher.short_hash(signing_input.decode("ascii")),
            scope=scope,
            issued_at=now,
            expires_at=expires_at,
            family_id=decision.family_id,
            kid=signer.kid,
        )
        return signer, signing_input, record
