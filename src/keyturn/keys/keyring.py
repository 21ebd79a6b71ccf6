"""The server's signing keys: bootstrap, publish-then-sign rotation, JWKS.

Rotation never surprises a verifier that caches the JWKS: a new key is
published at once but only starts signing at its ``activates_at`` (after the
configured delay), and a superseded key stays published until the last token
it signed has expired, after which it is deleted.

Each process keeps the key list in memory and re-reads it every
``refresh_interval`` seconds, so the choice of signing key is a pure function
of the cached list and the clock: processes switch at the same instant without
talking to each other.

What a process *publishes* (the JWKS, the PEM, the metadata's algorithms) is
read afresh instead, so a key rotated by any process (``keyturn keys rotate``
is one) is in every process's JWKS from the moment its row is committed, not
a refresh interval later. Concurrent publication requests share one read: a
request waits for a read that began after it arrived, or makes one. The
JWKS is fetched rarely (verifiers cache it), so this costs a query per
fetch at most.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from keyturn.keys.jwt import (
    ACCESS_TOKEN_TYP,
    Signer,
    decrypt_private_key,
    encrypt_private_key,
    generate_private_key,
    public_jwk,
    public_pem,
)
from keyturn.keys.signing_batch import SigningBatch
from keyturn.keys.signing_pool import SigningPool
from keyturn.keys.signing_processes import SigningProcesses
from keyturn.storage.protocol import SigningKeyStore
from keyturn.storage.records import SigningKeyRecord

log = logging.getLogger("keyturn.keys")

OFFLOADED_ALGS = frozenset({"RS256"})
"""Signed off the event loop under load; the others are cheaper than the hop."""

SIGN_THREADS = max(2, min(8, os.cpu_count() or 2))
"""Threads that sign tokens under load, per process: one per core (at least 2)."""


@dataclass(frozen=True, slots=True)
class KeyStatus:
    kid: str
    alg: str
    created_at: int
    activates_at: int
    state: str  # "pending" | "active" | "retired"
    retired_at: int | None


class KeyRing:
    def __init__(
        self,
        storage: SigningKeyStore,
        password: bytes,
        *,
        alg: str = "RS256",
        activation_delay: int = 3600,
        refresh_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
        sign_in_thread: bool | None = None,
        prune: bool = True,
    ) -> None:
        """``prune=False`` for a reader that must write nothing (the read-only CLI
        commands): it lists superseded keys whose tokens have all expired instead
        of deleting them, which the server's next reload does."""
        self._storage = storage
        self._prune_retired = prune
        self._password = password
        self.alg = alg
        self.activation_delay = activation_delay
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._sign_in_thread = sign_in_thread
        self._sign_pool: SigningPool | None = None
        self._batch = SigningBatch()
        self._sign_processes: SigningProcesses | None = None
        self._sign_processes_wanted = 0
        self._sign_loop: asyncio.AbstractEventLoop | None = None
        self._records: list[SigningKeyRecord] = []
        self._signers: dict[str, Signer] = {}
        self._jwks_body = b'{"keys":[]}'
        self._loaded_at = float("-inf")
        self._reads = 0  # key-list reads begun, for publication to share them
        self._lock = anyio.Lock()

    # -- loading -----------------------------------------------------------
    async def ensure_key(self) -> None:
        """Create the first signing key of an empty database, active at once."""
        if not await self._storage.list_signing_keys():
            record = self._new_record(self.alg, activates_at=int(self._clock()))
            await self._storage.add_signing_key(record)
            log.info("created signing key %s (%s)", record.kid, record.alg)
        await self.refresh(force=True)

    async def refresh(self, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._loaded_at < self.refresh_interval:
            return
        async with self._lock:
            if not force and self._clock() - self._loaded_at < self.refresh_interval:
                return
            await self._reload(now)

    async def _refresh_for_publication(self) -> None:
        """Read the key list unless a read began since this call did (module docstring)."""
        ticket = self._reads
        async with self._lock:
            if self._reads == ticket:
                await self._reload(self._clock())

    async def _reload(self, now: float) -> None:
        """Read the key list and load its signers; the caller holds ``_lock``."""
        self._reads += 1
        records = await self._storage.list_signing_keys()
        published = await self._prune(records, int(now)) if self._prune_retired else records
        self._records = published
        self._signers = {r.kid: self._signers.get(r.kid) or self._load_signer(r) for r in published}
        self._jwks_body = orjson.dumps({"keys": [r.public_jwk for r in published]})
        if self._sign_processes is not None:
            self._sign_processes.retain(self._signers)
        else:
            await self._start_sign_processes_for_rsa()
        self._loaded_at = self._clock()

    async def _prune(self, records: list[SigningKeyRecord], now: int) -> list[SigningKeyRecord]:
        """Drop superseded keys whose last token has expired; keep the rest."""
        kept: list[SigningKeyRecord] = []
        for status, record in zip(self._statuses(records, now), records, strict=True):
            grace = 2 * self.refresh_interval  # processes still on the old list
            if status.retired_at is not None and now - status.retired_at > grace:
                last_expiry = await self._storage.last_token_expiry(record.kid)
                if last_expiry is None or last_expiry < now:
                    await self._storage.delete_signing_key(record.kid)
                    log.info("dropped retired signing key %s", record.kid)
                    continue
            kept.append(record)
        return kept

    def _load_signer(self, record: SigningKeyRecord) -> Signer:
        private_key = decrypt_private_key(record.private_key, self._password)
        return Signer(private_key, record.alg, record.kid)

    def _new_record(self, alg: str, activates_at: int) -> SigningKeyRecord:
        held = {r.kid for r in self._records}
        while True:  # a kid is 48 bits of the thumbprint: unique among keys held, checked
            private_key = generate_private_key(alg)
            jwk = public_jwk(private_key, alg)
            if jwk["kid"] not in held:
                break
        return SigningKeyRecord(
            kid=jwk["kid"],
            alg=alg,
            private_key=encrypt_private_key(private_key, self._password),
            public_jwk=jwk,
            created_at=int(self._clock()),
            activates_at=activates_at,
        )

    # -- signing -----------------------------------------------------------
    def signer(self, now: float | None = None) -> Signer:
        """The key that signs at ``now``: the newest one already activated."""
        now = self._clock() if now is None else now
        active: SigningKeyRecord | None = None
        for record in self._records:
            if record.activates_at <= now:
                active = record
        if active is None:
            if not self._records:
                raise RuntimeError("no signing key loaded; call ensure_key() at start-up")
            active = self._records[0]
        return self._signers[active.kid]

    async def sign(
        self, claims: dict[str, Any], typ: str = ACCESS_TOKEN_TYP, *, busy: bool | None = None
    ) -> tuple[str, str]:
        """Sign claims (an access token unless ``typ`` says otherwise); ``(jwt, kid)``."""
        signer, signing_input = await self.prepare(claims, typ)
        return await self.sign_prepared(signer, signing_input, busy=busy), signer.kid

    async def prepare(
        self, claims: dict[str, Any], typ: str = ACCESS_TOKEN_TYP
    ) -> tuple[Signer, bytes]:
        """The key that signs now and the JWS signing input (header.payload) it signs.

        Apart from `sign_prepared` so that the token issuer can send the
        token's record to the database while the signature is being made.
        """
        await self.refresh()
        signer = self.signer()
        return signer, signer.signing_input(claims, typ)

    async def sign_prepared(
        self, signer: Signer, signing_input: bytes, *, busy: bool | None = None
    ) -> str:
        """The compact JWS of `prepare`'s signing input.

        An RSA signature takes a fifth to most of a millisecond. When other
        requests are in progress (``busy``, the token issuer's view; unknown
        means assume so), it is made in a helper process if the server started
        them (`start_sign_processes`), else on `SigningPool`'s threads (pyca/
        cryptography releases the GIL), so the event loop serves the others
        meanwhile. Alone, it is signed on the loop, which saves the hop. ES256
        and EdDSA are signed on the loop always: at 20-30 us the hop costs
        about what it frees (benchmarks/run.py: on threads, ES256 lost a fifth
        of the throughput at concurrency 16 and 64; in helpers, -5 to +12 %;
        RS256 gained 17 % on threads and 14-16 % more in helpers). On the loop,
        the signatures of one turn are made together at its end
        (`SigningBatch`: back to back, each costs half as much).
        """
        offload = self._sign_in_thread
        if offload is None:
            offload = signer.alg in OFFLOADED_ALGS and busy is not False
        if not offload:
            token = self._batch.sign(signer, signing_input)
            return token if isinstance(token, str) else await token
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on asyncio (e.g. trio): anyio's shared pool
            signature = await anyio.to_thread.run_sync(signer.signature, signing_input)
            return signer.compact(signing_input, signature)
        processes = self._sign_processes
        if processes is not None and processes.serves(loop):
            return await processes.sign(signer, signing_input)
        return await self._thread_pool().sign(signer, signing_input)

    async def verify(self, token: str, kid: str) -> bool:
        """Whether key ``kid``, still held, signed ``token`` (claims are not checked)."""
        signer = await self.verifier(kid)
        return signer is not None and signer.verify(token)

    async def verifier(self, kid: str) -> Signer | None:
        """The key held for ``kid`` now (None if none): the same object until the
        key is dropped or reloaded, so a cache of what it verified can tell."""
        await self.refresh()
        return self._signers.get(kid)

    def _thread_pool(self) -> SigningPool:
        if self._sign_pool is None:
            self._sign_pool = SigningPool(SIGN_THREADS)
        return self._sign_pool

    async def start_sign_processes(self, count: int) -> None:
        """Sign offloaded tokens in ``count`` helper processes (`signing_processes`).

        The server calls this at start-up on its event loop. The helpers start
        only once the key ring holds an RSA key (at once, or when a rotation
        brings one): ES256 and EdDSA are signed inline, and an idle helper
        still costs a process (~30 MB). Tokens signed on another loop, or
        while every helper is down, use the threads.
        """
        self._sign_processes_wanted = count
        self._sign_loop = asyncio.get_running_loop()
        await self._start_sign_processes_for_rsa()

    async def _start_sign_processes_for_rsa(self) -> None:
        count = self._sign_processes_wanted
        if count < 1 or self._sign_processes is not None:
            return
        if not any(r.alg in OFFLOADED_ALGS for r in self._records):
            return
        try:
            if asyncio.get_running_loop() is not self._sign_loop:
                return
        except RuntimeError:
            return
        processes = SigningProcesses(count, self._thread_pool())
        try:
            await processes.start()
        except Exception as exc:  # e.g. an embedded interpreter: threads still sign
            processes.close()
            self._sign_processes_wanted = 0  # do not try again on every refresh
            log.warning("cannot start signing helper processes, signing on threads: %r", exc)
            return
        except BaseException:
            processes.close()
            raise
        self._sign_processes = processes

    @property
    def sign_process_ids(self) -> list[int]:
        return self._sign_processes.pids if self._sign_processes is not None else []

    def close(self) -> None:
        """Stop the signing helpers and threads (the server's shutdown, the CLI's exit).
        A later key-list read (a JWKS request still in flight) starts no helper again."""
        self._sign_processes_wanted = 0
        if self._sign_processes is not None:
            self._sign_processes.close()
            self._sign_processes = None
        if self._sign_pool is not None:
            self._sign_pool.close()
            self._sign_pool = None

    # -- publishing --------------------------------------------------------
    async def jwks_body(self) -> bytes:
        await self._refresh_for_publication()
        return self._jwks_body

    async def published_algs(self) -> list[str]:
        await self._refresh_for_publication()
        return sorted({r.alg for r in self._records})

    async def public_pem(self, kid: str | None = None) -> str | None:
        await self._refresh_for_publication()
        if kid is None:
            return public_pem(self._records_by_kid()[self.signer().kid].public_jwk)
        record = self._records_by_kid().get(kid)
        return public_pem(record.public_jwk) if record else None

    def _records_by_kid(self) -> dict[str, SigningKeyRecord]:
        return {r.kid: r for r in self._records}

    # -- management --------------------------------------------------------
    async def rotate(self, *, alg: str | None = None, delay: int | None = None) -> KeyStatus:
        """Publish a new key now; it signs after ``delay`` seconds."""
        now = int(self._clock())
        delay = self.activation_delay if delay is None else delay
        record = self._new_record(alg or self.alg, activates_at=now + delay)
        await self._storage.add_signing_key(record)
        await self.refresh(force=True)
        return next(s for s in await self.statuses() if s.kid == record.kid)

    def loaded_statuses(self, now: float | None = None) -> list[KeyStatus]:
        """The states of the keys this process holds now, without reading the database:
        for readiness (is one active?) and metrics, which must not cost a query."""
        return self._statuses(self._records, int(self._clock() if now is None else now))

    async def statuses(self) -> list[KeyStatus]:
        records = await self._storage.list_signing_keys()
        return self._statuses(records, int(self._clock()))

    @staticmethod
    def _statuses(records: list[SigningKeyRecord], now: int) -> list[KeyStatus]:
        activated = [r for r in records if r.activates_at <= now]
        active_kid = activated[-1].kid if activated else None
        out = []
        for i, record in enumerate(records):
            successors = [r.activates_at for r in records[i + 1 :] if r.activates_at <= now]
            retired_at = min(successors) if successors and record.kid != active_kid else None
            if record.activates_at > now:
                state = "pending"
            elif record.kid == active_kid:
                state = "active"
            else:
                state = "retired"
            out.append(
                KeyStatus(
                    kid=record.kid,
                    alg=record.alg,
                    created_at=record.created_at,
                    activates_at=record.activates_at,
                    state=state,
                    retired_at=retired_at,
                )
            )
        return out
