"""`TokenVerifier`: is this bearer token a valid Keyturn access token for this API?

Verification itself is sans-IO: header checks, key lookup, signature and claims
are pure steps over the token, the cached keys and an injected clock. The only
I/O is fetching what the issuer publishes (metadata, JWKS) and, when enabled,
asking about revocation. Those are written once as generator flows
(`keyturn.guard._http`) and driven by `verify` (blocking) or `averify` (async),
so the two differ only in their lock and their client, websockets-style.

Concurrency: a refresh runs under a lock (a `threading.Lock` for `verify`, an
`anyio.Lock` for `averify`); a caller that waited re-checks the key cache's
generation and skips its own fetch when another caller already refreshed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from types import TracebackType
from typing import Self

import anyio

from keyturn.core.errors import (
    InvalidTokenError,
    OAuthError,
    ServerError,
    TemporarilyUnavailableError,
)
from keyturn.core.jose import (
    SUPPORTED_ALGS,
    CompactJWS,
    JoseFailure,
    VerificationKey,
    parse_compact,
    signing_registry,
    verify_signature,
)
from keyturn.guard import _http
from keyturn.guard._http import FetchError, Flow
from keyturn.guard.claims import (
    AccessTokenClaims,
    check_header,
    check_time_window,
    validate_claims,
)
from keyturn.guard.discovery import (
    IssuerMetadata,
    jwks_request,
    metadata_request,
    metadata_url,
    process_jwks_response,
    process_metadata_response,
)
from keyturn.guard.keycache import KeyCache
from keyturn.guard.revocation import (
    DenyList,
    DenyListUnavailableError,
    Introspection,
    IntrospectionRefusedError,
    introspection_flow,
)
from keyturn.guard.verified import Verified, VerifiedTokens

__all__ = ["DEFAULT_ALGORITHMS", "TokenVerifier"]

logger = logging.getLogger("keyturn.guard")

#: What the Keyturn server can sign with (RS256 by default, ES256 or Ed25519 by choice;
#: Ed25519 under either of its names, ``Ed25519`` or ``EdDSA``).
DEFAULT_ALGORITHMS: tuple[str, ...] = SUPPORTED_ALGS


class TokenVerifier:
    """Verifies RFC 9068 JWT access tokens of one issuer for one API.

    ``audience`` is the identifier (or identifiers) this API answers to; a token
    is accepted when its ``aud`` names one of them. ``leeway`` (seconds)
    absorbs clock skew on ``exp``, ``nbf`` and ``iat``. Keys come from the JWKS
    named by the issuer's metadata unless ``jwks_uri`` is given. Raises
    `InvalidTokenError` (401) for a bad token and `TemporarilyUnavailableError`
    (503) when the issuer's keys or the revocation source cannot be reached.

    Up to ``verified_cache_size`` tokens that passed are remembered, so a token
    used again skips parsing and the signature check (`keyturn.guard.verified`);
    its key, time claims and revocation are still checked on every call. 0
    turns the memory off.
    """

    def __init__(
        self,
        issuer: str,
        audience: str | Collection[str],
        *,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        leeway: float = 10.0,
        jwks_uri: str | None = None,
        jwks_max_age: float = 300.0,
        jwks_min_refetch_interval: float = 30.0,
        revocation: Introspection | DenyList | None = None,
        http_client: _http.Client | None = None,
        async_http_client: _http.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        verified_cache_size: int = 4096,
    ) -> None:
        audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not issuer or not audiences or not all(audiences):
            raise ValueError("issuer and audience must be non-empty")
        if leeway < 0:
            raise ValueError("leeway must be >= 0")
        self.issuer = issuer
        self.audiences = audiences
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.revocation = revocation
        self._registry = signing_registry(self.algorithms)
        self._keys = KeyCache(max_age=jwks_max_age, min_refetch_interval=jwks_min_refetch_interval)
        self._jwks_uri = jwks_uri
        self._metadata: IssuerMetadata | None = None
        self._clock = clock
        self._client = http_client
        self._async_client = async_http_client
        self._owns_client = http_client is None
        self._owns_async_client = async_http_client is None
        self._verified: VerifiedTokens[Verified] = VerifiedTokens(verified_cache_size)
        self._thread_lock = threading.Lock()
        self._async_lock: anyio.Lock | None = None

    def __repr__(self) -> str:
        return f"TokenVerifier(issuer={self.issuer!r}, audience={sorted(self.audiences)!r})"

    # -- the two drivers ----------------------------------------------------

    def verify(self, token: str) -> AccessTokenClaims:
        """Verify ``token`` (blocking); return its claims or raise an `OAuthError`."""
        claims = self._recall(token)
        if claims is None:
            parsed, kid = self._parse(token)
            seen = self._keys.generation
            if self._keys.wants_refresh(kid, self._clock()):
                with self._thread_lock:
                    _http.drive_sync(self._refresh_flow(seen), self._sync_client())
            claims = self._check(token, parsed, kid, self._clock())
        revocation = self.revocation
        if isinstance(revocation, Introspection):
            flow = self._introspection_flow(revocation, token, claims)
            _reject_if_revoked(_http.drive_sync(flow, self._sync_client()))
        elif revocation is not None:
            try:
                revoked = revocation.is_revoked(claims.jwt_id)
            except DenyListUnavailableError as exc:
                raise _unavailable("revocation list", exc) from exc
            _reject_if_revoked(revoked)
        return claims

    async def averify(self, token: str) -> AccessTokenClaims:
        """Verify ``token`` without blocking the event loop."""
        claims = self._recall(token)
        if claims is None:
            parsed, kid = self._parse(token)
            seen = self._keys.generation
            if self._keys.wants_refresh(kid, self._clock()):
                async with self._lock():
                    await _http.drive_async(self._refresh_flow(seen), self._async_http())
            claims = self._check(token, parsed, kid, self._clock())
        revocation = self.revocation
        if isinstance(revocation, Introspection):
            flow = self._introspection_flow(revocation, token, claims)
            _reject_if_revoked(await _http.drive_async(flow, self._async_http()))
        elif revocation is not None:
            try:
                revoked = await revocation.ais_revoked(claims.jwt_id)
            except DenyListUnavailableError as exc:
                raise _unavailable("revocation list", exc) from exc
            _reject_if_revoked(revoked)
        return claims

    # -- pure steps ---------------------------------------------------------

    def _parse(self, token: str) -> tuple[CompactJWS, str]:
        try:
            parsed = parse_compact(token, self._registry)
        except JoseFailure as exc:
            raise InvalidTokenError("The access token is malformed", detail=str(exc)) from exc
        return parsed, check_header(parsed.header, self.algorithms)

    def _recall(self, token: str) -> AccessTokenClaims | None:
        """The claims of a token verified before, if its key is still the JWKS's own."""
        entry = self._verified.get(token)
        if entry is None:
            return None
        now = self._clock()
        keys = self._keys
        if entry.usable_from <= now < entry.usable_until and entry.generation == keys.generation:
            return entry.claims  # nothing moved since it was verified (`keyturn.guard.verified`)
        if keys.get(entry.kid) is not entry.key or keys.wants_refresh(entry.kid, now):
            self._verified.forget(token)  # rotated, dropped or due a refetch: verify again
            return None
        claims = entry.claims
        try:
            check_time_window(
                claims.expires_at, claims.issued_at, claims.not_before, now=now, leeway=self.leeway
            )
        except InvalidTokenError:
            self._verified.forget(token)
            raise
        return claims

    def _check(self, token: str, parsed: CompactJWS, kid: str, now: float) -> AccessTokenClaims:
        # Read before the key: a refetch by another thread in between leaves this
        # entry an older generation, so it never passes the quick check.
        keys_seen = self._keys.generation, self._keys.fresh_until
        key = self._key(kid, now)
        try:
            verify_signature(parsed, key, self._registry)
            payload = parsed.payload()
        except JoseFailure as exc:
            raise InvalidTokenError(
                "The access token signature is invalid", detail=f"kid {kid!r}: {exc}"
            ) from exc
        claims = validate_claims(
            payload, issuer=self.issuer, audiences=self.audiences, now=now, leeway=self.leeway
        )
        self._verified.put(token, self._remembered(kid, key, claims, keys_seen))
        return claims

    def _remembered(
        self, kid: str, key: VerificationKey, claims: AccessTokenClaims, keys: tuple[int, float]
    ) -> Verified:
        """What a hit needs: the key set's generation, and the window in which the
        time claims pass (as `check_time_window` decides) and the set is not stale."""
        generation, fresh_until = keys
        earliest = claims.issued_at
        if claims.not_before is not None:
            earliest = max(earliest, claims.not_before)
        until = min(claims.expires_at + self.leeway, fresh_until)
        return Verified(kid, key, claims, generation, earliest - self.leeway, until)

    def _key(self, kid: str, now: float) -> VerificationKey:
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._keys.last_failed:
            # We could not ask the issuer: not the token's fault, so not a 401.
            raise TemporarilyUnavailableError(
                "The issuer's signing keys are unavailable",
                detail=f"JWKS fetch failed; kid {kid!r} unknown",
                headers={"Retry-After": str(max(1, round(self._keys.retry_after(now))))},
            )
        raise InvalidTokenError(
            "The access token is signed with an unknown key", detail=f"kid {kid!r} not in JWKS"
        )

    # -- flows (the only I/O, written once) ------------------------------------

    def _metadata_flow(self) -> Flow[IssuerMetadata]:
        if self._metadata is None:
            response = yield metadata_request(metadata_url(self.issuer))
            self._metadata = process_metadata_response(response, self.issuer)
        return self._metadata

    def _refresh_flow(self, seen_generation: int) -> Flow[None]:
        """Fetch the JWKS unless someone refreshed meanwhile or the rate limit says wait."""
        now = self._clock()
        if self._keys.generation != seen_generation or not self._keys.may_fetch(now):
            return
        self._keys.begin_fetch(now)
        try:
            jwks_uri = self._jwks_uri
            if jwks_uri is None:
                jwks_uri = (yield from self._metadata_flow()).jwks_uri
            response = yield jwks_request(jwks_uri)
            keys = process_jwks_response(response, jwks_uri)
        except FetchError as exc:
            self._metadata = None  # rediscover next time: the jwks_uri may have moved
            self._keys.fetch_failed()
            logger.warning("keyturn.guard: JWKS refresh for %s failed: %s", self.issuer, exc)
            return
        finally:
            self._keys.end_fetch()  # also when a cancelled caller closes the flow
        self._keys.install(keys, now)
        logger.info("keyturn.guard: loaded JWKS of %s, kids %s", self.issuer, sorted(keys))

    def _introspection_flow(
        self, introspection: Introspection, token: str, claims: AccessTokenClaims
    ) -> Flow[bool]:
        try:
            endpoint = introspection.endpoint
            if endpoint is None:
                endpoint = (yield from self._metadata_flow()).introspection_endpoint
            if endpoint is None:
                raise FetchError("issuer metadata names no introspection_endpoint")
            return (
                yield from introspection_flow(
                    introspection,
                    endpoint,
                    token,
                    jti=claims.jwt_id,
                    expires_at=claims.expires_at,
                    now=self._clock(),
                )
            )
        except FetchError as exc:
            raise _unavailable("introspection endpoint", exc) from exc
        except IntrospectionRefusedError as exc:
            # Not the token's fault nor the caller's: this API cannot check tokens.
            logger.error(
                "keyturn.guard: %s refuses to introspect for client %r: %s",
                self.issuer,
                introspection.client_id,
                exc,
            )
            raise ServerError(
                "This API cannot check access tokens: its introspection client may "
                "introspect only its own tokens",
                detail=str(exc),
            ) from exc

    # -- clients and locks ---------------------------------------------------

    def _sync_client(self) -> _http.Client:
        if self._client is None:
            self._client = _http.new_client()
        return self._client

    def _async_http(self) -> _http.AsyncClient:
        if self._async_client is None:
            self._async_client = _http.new_async_client()
        return self._async_client

    def _lock(self) -> anyio.Lock:
        if self._async_lock is None:
            self._async_lock = anyio.Lock()
        return self._async_lock

    def close(self) -> None:
        """Close the HTTP client this verifier created (not one it was given)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close both HTTP clients this verifier created."""
        self.close()
        if self._owns_async_client and self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _reject_if_revoked(revoked: bool) -> None:
    if revoked:
        raise InvalidTokenError("The access token has been revoked")


def _unavailable(what: str, exc: Exception) -> OAuthError:
    logger.warning("keyturn.guard: %s unavailable: %s", what, exc)
    return TemporarilyUnavailableError(
        f"The {what} is unavailable; retry shortly", detail=str(exc), headers={"Retry-After": "1"}
    )
