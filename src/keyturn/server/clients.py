"""Client registration and a short-lived in-process cache of client records.

The cache saves a database round-trip on every token request; its TTL
(``KEYTURN_CLIENT_CACHE_TTL``, 5 s by default) bounds how long another process
keeps using a client that was changed or deleted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

from keyturn.server.limits import check_client
from keyturn.server.secrets import Hasher, generate_client_id, generate_client_secret
from keyturn.storage.records import (
    AUTH_BASIC,
    AUTH_NONE,
    AUTH_POST,
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    Client,
)
from keyturn.storage.repository import Storage

KNOWN_AUTH_METHODS = (AUTH_BASIC, AUTH_POST, AUTH_NONE)


class ClientCache:
    """Client records by id, for ``ttl`` seconds, found or not.

    An unknown id is remembered as unknown exactly as a known one is
    remembered. Client authentication reloads a cached record whose check
    failed (`keyturn.server.client_auth`), so that every failure costs one
    database read: before, an unknown id always went to the database and a
    known one with a wrong secret never did, and the difference in time told
    an attacker which ids exist. At most ``max_entries`` are kept; the oldest
    go first (a cache: evicting costs one lookup, never correctness).

    When an entry expires, the lookups that find it expired share one read,
    made by a task of its own so that a caller who goes away does not cancel
    it for the others. Each of them used to read for itself: under load, every
    ``ttl`` a burst of concurrent reads through SQLAlchemy's pool stalled the
    requests waiting on them (the p99 of introspection on SQLite at
    concurrency 16 was 50-100 ms against a p50 of 4; 9-14 ms with no expiry).
    """

    def __init__(
        self,
        storage: Storage,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_entries: int = 10_000,
    ) -> None:
        self._storage = storage
        self._ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._entries: dict[str, tuple[Client | None, float]] = {}
        self._reading: dict[str, asyncio.Task[Client | None]] = {}
        self._generation = 0  # moves on every forget(): reads begun before it keep nothing

    async def get(self, client_id: str) -> Client | None:
        return (await self.lookup(client_id))[0]

    async def lookup(self, client_id: str) -> tuple[Client | None, bool]:
        """The client (or None) and whether it was just read from the database."""
        entry = self._entries.get(client_id)
        if entry is not None and self._clock() - entry[1] < self._ttl:
            return entry[0], False
        read = self._reading.get(client_id)
        if read is None:
            read = asyncio.get_running_loop().create_task(self.reload(client_id))
            self._reading[client_id] = read
            read.add_done_callback(lambda done: self._read_done(client_id, done))
        return await asyncio.shield(read), True

    def _read_done(self, client_id: str, read: asyncio.Task[Client | None]) -> None:
        if self._reading.get(client_id) is read:
            del self._reading[client_id]
        if not read.cancelled():
            read.exception()  # retrieved, also when every caller has gone

    async def reload(self, client_id: str) -> Client | None:
        """Read the client from the database now, and remember what was found,
        unless a client was forgotten meanwhile (the read may predate the change)."""
        now = self._clock()
        generation = self._generation
        client = await self._storage.get_client(client_id)
        if self._ttl > 0 and generation == self._generation:
            self._entries.pop(client_id, None)  # re-inserted last: the newest
            while len(self._entries) >= self._max:
                del self._entries[next(iter(self._entries))]
            self._entries[client_id] = (client, now)
        return client

    def forget(self, client_id: str) -> None:
        """Drop what is known of a client this process just changed or deleted: later
        lookups read it again, and no read begun before now answers them or is kept."""
        self._entries.pop(client_id, None)
        self._reading.pop(client_id, None)
        self._generation += 1


@dataclass(frozen=True, slots=True)
class NewClient:
    client: Client
    secret: str | None  # shown once, never stored


def _clean(values: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for item in value.replace(",", " ").split():
            if item not in out:
                out.append(item)
    return tuple(out)


class ClientOptions(TypedDict, total=False):
    """What a new client may be given, for callers that pass it on to `build_client`
    (whose signature holds the defaults)."""

    client_id: str | None
    name: str
    public: bool
    grant_types: Iterable[str]
    scopes: Iterable[str]
    audiences: Iterable[str]
    redirect_uris: Iterable[str]
    auth_methods: Iterable[str] | None
    access_token_lifetime: int | None
    rate_limit: int | None
    can_introspect: bool
    allow_plain_pkce: bool


def build_client(
    hasher: Hasher,
    *,
    client_id: str | None = None,
    name: str = "",
    public: bool = False,
    grant_types: Iterable[str] = (GRANT_CLIENT_CREDENTIALS,),
    scopes: Iterable[str] = (),
    audiences: Iterable[str] = (),
    redirect_uris: Iterable[str] = (),
    auth_methods: Iterable[str] | None = None,
    access_token_lifetime: int | None = None,
    rate_limit: int | None = None,
    can_introspect: bool = False,
    allow_plain_pkce: bool = False,
    now: int | None = None,
) -> NewClient:
    """A validated new client and its one-time secret (confidential clients)."""
    methods = _clean(auth_methods) if auth_methods is not None else ()
    if not methods:
        methods = (AUTH_NONE,) if public else (AUTH_BASIC, AUTH_POST)
    stamp = int(time.time()) if now is None else now
    secret = None if public else generate_client_secret()
    client = Client(
        client_id=client_id or generate_client_id(),
        name=name,
        secret_hash=hasher.hash(secret) if secret else None,
        is_public=public,
        grant_types=_clean(grant_types),
        scopes=_clean(scopes),
        audiences=_clean(audiences),
        redirect_uris=tuple(redirect_uris),
        auth_methods=methods,
        access_token_lifetime=access_token_lifetime,
        rate_limit=rate_limit,
        can_introspect=can_introspect,
        allow_plain_pkce=allow_plain_pkce,
        created_at=stamp,
        updated_at=stamp,
        secret_created_at=stamp if secret else None,
    )
    validate_client(client)
    return NewClient(client, secret)


def update_client(client: Client, **changes: Any) -> Client:
    """``client`` with ``changes`` (None = keep), validated like a new one."""
    values = {k: v for k, v in changes.items() if v is not None}
    for key in ("grant_types", "scopes", "audiences"):
        if key in values:
            values[key] = _clean(values[key])
    if "redirect_uris" in values:
        values["redirect_uris"] = tuple(values["redirect_uris"])
    updated = client.with_changes(**values, updated_at=int(time.time()))
    validate_client(updated)
    return updated


def validate_client(client: Client) -> None:
    """Raise `ValueError` naming what is wrong; every front end builds clients through here."""
    # The grant registry imports the grants, which import the context, which
    # imports this module: so it is imported when first needed, not at load.
    from keyturn.server.grants.registry import KNOWN_GRANTS, PUBLIC_CLIENT_GRANTS

    check_client(client)  # the sizes every front end shares (server/limits.py)
    unknown = [g for g in client.grant_types if g not in KNOWN_GRANTS]
    if unknown:
        raise ValueError(f"unknown grant type {unknown[0]!r}; known: {', '.join(KNOWN_GRANTS)}")
    if client.is_public:
        refused = [g for g in client.grant_types if g not in PUBLIC_CLIENT_GRANTS]
        if refused:
            raise ValueError(
                f"a public client has no secret, so it cannot use {', '.join(refused)}"
            )
    if GRANT_AUTHORIZATION_CODE in client.grant_types and not client.redirect_uris:
        raise ValueError("the authorization_code grant needs at least one redirect URI")
    bad = [m for m in client.auth_methods if m not in KNOWN_AUTH_METHODS]
    if bad:
        raise ValueError(f"unknown auth method {bad[0]!r}; known: {', '.join(KNOWN_AUTH_METHODS)}")
    if client.is_public != (client.auth_methods == (AUTH_NONE,)):
        raise ValueError("public clients use auth method 'none', and only public clients do")
    if client.access_token_lifetime is not None and client.access_token_lifetime <= 0:
        raise ValueError("the access token lifetime must be a positive number of seconds")
    if client.rate_limit is not None and client.rate_limit < 0:
        raise ValueError("the rate limit must be 0 (unlimited) or a positive number per minute")
    for uri in client.redirect_uris:
        if "#" in uri or "://" not in uri:
            raise ValueError(f"redirect URI {uri!r} must be absolute and have no fragment")


def with_new_secret(hasher: Hasher, client: Client, *, now: int, overlap: int) -> NewClient:
    """``client`` with a new current secret; the old one stays accepted for ``overlap`` s.

    Only one previous secret is kept: one still in its overlap is replaced.
    Storage applies the same change in one statement (`Storage.rotate_client_secret`);
    this is the record it is expected to return, and the secret to show once.
    """
    if client.is_public:
        raise ValueError("a public client has no secret to rotate")
    if overlap < 0:
        raise ValueError("the overlap is 0 (the old secret stops at once) or more seconds")
    secret = generate_client_secret()
    keep = overlap > 0 and client.secret_hash is not None
    updated = client.with_changes(
        secret_hash=hasher.hash(secret),
        secret_created_at=now,
        previous_secret_hash=client.secret_hash if keep else None,
        previous_secret_created_at=client.secret_created_at if keep else None,
        previous_secret_expires_at=now + overlap if keep else None,
        updated_at=now,
    )
    return NewClient(updated, secret)
