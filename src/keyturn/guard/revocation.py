"""Revocation awareness: a JWT stays valid until ``exp`` unless the guard asks.

Two opt-in ways, both keyed by the token's ``jti``:

- `Introspection`: ask the issuer's RFC 7662 endpoint, and cache the answer for
  a few seconds (``cache_ttl``) so a busy API does not introspect every call.
  A revocation is therefore seen within ``cache_ttl`` seconds.
- a `DenyList`: a shared store the server writes revoked ``jti`` values to;
  `keyturn.guard.redis_denylist.RedisDenyList` is the Redis one.

Both fail closed: if the answer cannot be had, the request gets 503, never a
silent pass.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from keyturn.core.http import HttpRequest, HttpResponse
from keyturn.guard._http import FetchError, Flow, json_body, post_form_request

__all__ = [
    "DenyList",
    "DenyListUnavailableError",
    "Introspection",
    "IntrospectionRefusedError",
    "introspection_flow",
]


class DenyListUnavailableError(Exception):
    """The deny-list could not be consulted (the store is down or timed out)."""


class IntrospectionRefusedError(Exception):
    """The issuer will not tell this guard's client about the token: the guard is
    misconfigured (a Keyturn server says so with ``not_permitted``), not the token
    revoked."""


@runtime_checkable
class DenyList(Protocol):
    """A store of revoked token ids; implement both for sync and async verification."""

    def is_revoked(self, jti: str) -> bool: ...

    async def ais_revoked(self, jti: str) -> bool: ...


class Introspection:
    """Revocation checks through the issuer's introspection endpoint (RFC 7662).

    The guard authenticates as a client (HTTP Basic). ``endpoint`` defaults to
    the metadata's ``introspection_endpoint``. Answers are cached per ``jti``
    for ``cache_ttl`` seconds (never past the token's ``exp``), in a cache of
    at most ``max_entries``.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        endpoint: str | None = None,
        cache_ttl: float = 10.0,
        max_entries: int = 10_000,
    ) -> None:
        if cache_ttl < 0 or max_entries < 1:
            raise ValueError("cache_ttl must be >= 0 and max_entries >= 1")
        self.client_id = client_id
        self._client_secret = client_secret
        self.endpoint = endpoint
        self.cache_ttl = cache_ttl
        self.max_entries = max_entries
        # jti -> (active, valid until); dict order is insertion order, oldest first.
        self._cache: dict[str, tuple[bool, float]] = {}
        self._mutex = threading.Lock()  # verify() may run on many threads

    def __repr__(self) -> str:
        return f"Introspection(client_id={self.client_id!r}, endpoint={self.endpoint!r})"

    def cached(self, jti: str, now: float) -> bool | None:
        """The remembered ``active`` for ``jti``, or None when unknown or expired."""
        with self._mutex:
            entry = self._cache.get(jti)
            if entry is None:
                return None
            if now >= entry[1]:
                del self._cache[jti]
                return None
            return entry[0]

    def remember(self, jti: str, active: bool, *, now: float, expires_at: float) -> None:
        until = min(now + self.cache_ttl, expires_at)
        if until <= now:
            return
        with self._mutex:
            if jti not in self._cache and len(self._cache) >= self.max_entries:
                self._evict(now)
            self._cache[jti] = (active, until)

    def request(self, endpoint: str, token: str) -> HttpRequest:
        return post_form_request(
            endpoint,
            {"token": token, "token_type_hint": "access_token"},
            username=self.client_id,
            password=self._client_secret,
        )

    @staticmethod
    def process_response(response: HttpResponse, endpoint: str) -> bool:
        """The ``active`` member of an RFC 7662 §2.2 answer from ``endpoint``."""
        body = json_body(response, endpoint)
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            raise FetchError("introspection answer has no boolean 'active'")
        active: bool = body["active"]
        refusal = body.get("not_permitted")
        if not active and refusal:
            raise IntrospectionRefusedError(str(refusal))
        return active

    def _evict(self, now: float) -> None:
        expired = [jti for jti, (_, until) in self._cache.items() if until <= now]
        for jti in expired:
            del self._cache[jti]
        while len(self._cache) >= self.max_entries:
            del self._cache[next(iter(self._cache))]


def introspection_flow(
    introspection: Introspection,
    endpoint: str,
    token: str,
    *,
    jti: str,
    expires_at: float,
    now: float,
) -> Flow[bool]:
    """True when the issuer says the token is no longer active."""
    active = introspection.cached(jti, now)
    if active is None:
        response = yield introspection.request(endpoint, token)
        active = introspection.process_response(response, endpoint)
        introspection.remember(jti, active, now=now, expires_at=expires_at)
    return not active
