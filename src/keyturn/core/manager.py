"""The token manager as a sans-IO state machine: one implementation for every shell.

`TokenCore` owns the state (current token, the exchange in flight, the shared
cooldown, discovered metadata) behind one `threading.Lock` that is held for a
few dictionary-sized steps and never across I/O. Its operations are
generators of `keyturn.core.commands`; the sync and async shells in
`keyturn.client` execute the commands. So threads and asyncio tasks on any
loop share one single-flight token exchange, and no logic is written twice.

Policy, in one place:

* **Expiry** is tracked on the monotonic clock. A token is *fresh* until its
  refresh point ``deadline - leeway * (1 + U(0, jitter))`` (the leeway is
  capped at half the lifetime so short-lived tokens are not refreshed on every
  call), *usable* until its deadline. Two names, two questions:
  `is_refresh_due` (past the refresh point: the manager will renew) and
  `is_token_expired` (past the deadline: the token is dead, the same answer as
  `OAuthToken.is_expired` gives on the wall clock).
* **Single flight**: a caller without a usable token either leads the exchange
  or waits on the one in flight; all waiters get its token or its error, and
  the next call after a failure tries again.
* **Stale-while-revalidate**: past the refresh point one caller refreshes while
  the others keep using the still-usable token; a failed background refresh
  is reported (event + log) and retried ``refresh_retry_interval`` later.
* **Persistence**: under the store's lock the store is re-read first (another
  process may have rotated already), the new token is saved before anyone
  gets it, a refresh answer without ``refresh_token`` keeps the old one, and
  ``invalid_grant`` clears the stored token only if it is still the one used.
* **Back-pressure**: a 429 (honouring ``Retry-After``) or repeated 5xx starts one
  cooldown shared by all callers; retries are bounded and jittered, then a
  `RateLimitedError` with ``retry_after`` is raised.
* **Logout** is a flight too: `revoke` waits out the exchange in flight (or it
  would make its token current again after the logout, or refresh with a
  forgotten refresh token), then holds the flight while it forgets and revokes;
  callers who need a token meanwhile wait, then try again as after a logout.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from keyturn.core.authorization import (
    AuthorizationRequest,
    StateMismatchError,
    build_authorization_request,
)
from keyturn.core.authorization import parse_redirect as _parse_redirect
from keyturn.core.clock import Clock
from keyturn.core.commands import (
    CallProvider,
    CallUpdate,
    Op,
    Send,
    SendApi,
    Sleep,
    StoreClear,
    StoreLoad,
    StoreLock,
    StoreSave,
    StoreUnlock,
    WaitFlight,
)
from keyturn.core.credentials import AuthorizationCodeCredentials, Credentials
from keyturn.core.discovery import (
    ServerMetadata,
    is_absent,
    jwks_request,
    metadata_requests,
    process_jwks_response,
    process_metadata_response,
)
from keyturn.core.errors import (
    InvalidGrantError,
    InvalidResponseError,
    KeyturnError,
    OAuthError,
    RateLimitedError,
    TransportError,
    UnsupportedTokenTypeError,
)
from keyturn.core.events import EventKind, TokenEvent
from keyturn.core.flight import Flight
from keyturn.core.grants import (
    DEFAULT_LIFETIME,
    authorization_code_request,
    estimate_clock_skew,
    grant_request,
    process_revocation_response,
    process_token_response,
    refresh_request,
    revocation_request,
)
from keyturn.core.id_token import (
    IdTokenError,
    IdTokenExpectations,
    UnknownSigningKey,
    validate_id_token,
)
from keyturn.core.jose import VerificationKey
from keyturn.core.revoke import (
    RevocationError,
    RevocationResult,
    RevocationStatus,
    TokenRevocation,
)
from keyturn.core.token import OAuthToken

__all__ = ["AuthorizationRequiredError", "ManagerSettings", "TokenCore", "in_provider"]

log = logging.getLogger("keyturn.client")

_PROVIDER_FLIGHT: ContextVar[list[OAuthToken] | None] = ContextVar(
    "keyturn_provider_flight", default=None
)


class AuthorizationRequiredError(KeyturnError):
    """No token and none can be fetched without the user: run the authorization-code flow."""


@dataclass(frozen=True, slots=True)
class ManagerSettings:
    leeway: float = 60.0
    """Refresh this many seconds before expiry (capped at half the lifetime)."""
    jitter: float = 0.2
    """Up to this fraction is added to ``leeway`` at random, so a fleet spreads its refreshes."""
    default_lifetime: float = DEFAULT_LIFETIME
    max_retries: int = 2
    """Retries after a 429 or 5xx from the token endpoint, for callers without a usable token."""
    max_retry_wait: float = 30.0
    """A cooldown longer than this is not waited out: `RateLimitedError` is raised at once."""
    backoff: float = 0.5
    """First back-off after a 5xx without ``Retry-After``; doubles per retry."""
    refresh_retry_interval: float = 5.0
    """After a failed background refresh, wait this long before the next attempt."""


@dataclass(frozen=True, slots=True)
class _Held:
    token: OAuthToken
    deadline: float
    refresh_at: float
    rejected: bool = False


class in_provider:
    """Context for calling ``token_provider``: nested fetches run directly, not as a new flight."""

    def __init__(self) -> None:
        self.obtained: list[OAuthToken] = []
        self._reset: Any = None

    def __enter__(self) -> in_provider:
        self._reset = _PROVIDER_FLIGHT.set(self.obtained)
        return self

    def __exit__(self, *exc: object) -> None:
        _PROVIDER_FLIGHT.reset(self._reset)


_JWKS_MIN_INTERVAL = 60.0
"""An unknown ``kid`` fetches the JWKS again, but not more often than this (seconds)."""


def _is_server_failure(exc: Exception) -> bool:
    if isinstance(exc, OAuthError):
        return exc.status_code >= 500
    return isinstance(exc, InvalidResponseError) and (exc.status_code or 0) >= 500


def _error_name(exc: BaseException) -> str:
    return exc.error if isinstance(exc, OAuthError) else type(exc).__name__


class TokenCore:
    """State and operations of one token manager; see the module docstring."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        clock: Clock,
        settings: ManagerSettings | None = None,
        has_provider: bool = False,
        emit: Callable[[TokenEvent], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.credentials = credentials
        self.settings = settings or ManagerSettings()
        self.clock = clock
        self.has_provider = has_provider
        self.store_key = credentials.cache_key()
        self.clock_skew: float | None = None
        self._emit_hook = emit
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._mutex = threading.Lock()
        self._held: _Held | None = None
        self._flight: Flight | None = None
        self._cooldown_until = float("-inf")
        self._metadata: ServerMetadata | None = None
        # Authorization requests by state, then by code once the redirect came back.
        self._pending: OrderedDict[str, AuthorizationRequest] = OrderedDict()
        self._redeemable: OrderedDict[str, AuthorizationRequest] = OrderedDict()
        self._jwks: dict[str, VerificationKey] | None = None
        self._jwks_fetched_at = float("-inf")
        if credentials.token is not None:
            self._held = self._hold(credentials.token)

    # -- state ----------------------------------------------------------------

    def fresh_token(self) -> OAuthToken | None:
        """The current token if it needs no work: the lock-free hot path."""
        held = self._held
        if held is not None and not held.rejected and self.clock.monotonic() < held.refresh_at:
            return held.token
        return None

    @property
    def token(self) -> OAuthToken | None:
        held = self._held
        return held.token if held is not None else None

    def is_token_expired(self, leeway: float = 0.0) -> bool:
        """True when there is no token, the API rejected it, or it dies within ``leeway`` s.

        The same question as `OAuthToken.is_expired`, asked of the monotonic
        deadline fixed when the token arrived (so a wall-clock jump does not
        change the answer). Not the refresh point: see `is_refresh_due`.
        """
        held = self._held
        return held is None or held.rejected or self.clock.monotonic() >= held.deadline - leeway

    def is_refresh_due(self) -> bool:
        """True when the next call would renew: no token, rejected, or past the refresh point.

        The refresh point is ``leeway * (1 + U(0, jitter))`` before the deadline
        (module docstring), so this turns true before `is_token_expired` does.
        """
        return self.fresh_token() is None

    def cooldown_remaining(self) -> float:
        return max(0.0, self._cooldown_until - self.clock.monotonic())

    def set_token(self, token: OAuthToken | None) -> None:
        with self._mutex:
            self._held = self._hold(token) if token is not None else None

    def invalidate(self, rejected: OAuthToken) -> bool:
        """After a 401: drop ``rejected`` only if it is still the current token."""
        with self._mutex:
            held = self._held
            if held is None or held.rejected or held.token.access_token != rejected.access_token:
                return False
            self._held = replace(held, rejected=True)
        self._emit(EventKind.TOKEN_REJECTED)
        return True

    def _hold(self, token: OAuthToken) -> _Held:
        now = self.clock.monotonic()
        s = self.settings
        if token.expires_at is not None:
            remaining = token.expires_at - self.clock.time()
        else:
            remaining = s.default_lifetime
        deadline = now + remaining
        lifetime = float(token.expires_in) if token.expires_in else remaining
        leeway = min(s.leeway, max(0.0, lifetime) / 2)
        refresh_at = deadline - leeway * (1 + self._rng.uniform(0, s.jitter))
        if refresh_at <= now:
            # Already inside its refresh window (e.g. handed over by a provider):
            # use it until it dies instead of asking again on every call.
            refresh_at = deadline
        return _Held(token, deadline, refresh_at)

    def _usable_stored(self, token: OAuthToken) -> bool:
        """A stored token is adopted only if it is not yet due for refresh."""
        if token.expires_at is None:
            return True
        remaining = token.expires_at - self.clock.time()
        lifetime = float(token.expires_in) if token.expires_in else remaining
        return remaining > min(self.settings.leeway, max(0.0, lifetime) / 2)

    def _emit(
        self, kind: EventKind, error: BaseException | None = None, retry_after: float | None = None
    ) -> None:
        event = TokenEvent(
            kind,
            self.credentials.grant_type,
            _error_name(error) if error is not None else None,
            retry_after,
        )
        if self._emit_hook is not None:
            self._emit_hook(event)

    # -- the request flow ---------------------------------------------------

    def request_flow(
        self, request: Any, attach: Callable[[Any, OAuthToken], None], replayable: bool
    ) -> Op[None]:
        """Authorize one API request; on 401 renew the token and replay it once."""
        token = self.fresh_token()
        if token is None:
            token = yield from self.acquire()
        attach(request, token)
        status = yield from SendApi(request)
        if status == 401:
            yield from self.after_401(request, token, attach, replayable)

    def after_401(
        self,
        request: Any,
        rejected: OAuthToken,
        attach: Callable[[Any, OAuthToken], None],
        replayable: bool,
    ) -> Op[None]:
        """The API said 401 to ``rejected``: drop it if still current, replay once if possible.

        Shells with a fast path (token fresh, no generator needed) start here.
        """
        self.invalidate(rejected)
        if not replayable:
            return
        token = yield from self.acquire()
        attach(request, token)
        yield from SendApi(request)

    # -- acquire: single flight + stale-while-revalidate ------------------------

    def acquire(self) -> Op[OAuthToken]:
        """A usable token: the current one, a waited-for one, or a newly obtained one."""
        while True:
            with self._mutex:
                now = self.clock.monotonic()
                held = self._held
                if held is not None and not held.rejected and now < held.refresh_at:
                    return held.token
                usable = (
                    held if held is not None and not held.rejected and now < held.deadline else None
                )
                flight = self._flight
                if flight is not None:
                    if usable is not None:
                        return usable.token  # someone is refreshing: keep serving
                    flight.waiters += 1
                else:
                    flight = self._flight = Flight()
                    break
            self._emit(EventKind.WAITING)
            joined = yield from self._join(flight)
            if joined is not None:
                return joined

        last = held.token if held is not None else None
        background = usable is not None
        try:
            return (yield from self._lead(flight, lambda: self._obtain(last, background)))
        except BaseException as exc:
            if usable is None:
                raise
            now = self.clock.monotonic()
            with self._mutex:
                if self._held is usable:  # back off before the next background attempt
                    retry_at = min(now + self.settings.refresh_retry_interval, usable.deadline)
                    self._held = replace(usable, refresh_at=retry_at)
            if not isinstance(exc, Exception) or now >= usable.deadline:
                raise
            log.warning(
                "keyturn: background token refresh failed (%s); still using the current token",
                _error_name(exc),
            )
            self._emit(EventKind.STALE_SERVED, exc)
            return usable.token

    @staticmethod
    def _join(flight: Flight) -> Op[OAuthToken | None]:
        """Wait out another caller's flight: its token, its error raised, or None to retry."""
        yield from WaitFlight(flight)
        if flight.retry:
            return None
        if flight.error is not None:
            raise flight.error
        assert flight.token is not None
        return flight.token

    def _lead(
        self, flight: Flight, work: Callable[[], Op[tuple[OAuthToken, bool]]]
    ) -> Op[OAuthToken]:
        """Run ``work`` as the flight's leader and publish its outcome to every waiter."""
        try:
            token, fresh = yield from work()
            if fresh:
                yield from CallUpdate(token)
        except Exception as exc:
            with self._mutex:
                if self._flight is flight:
                    self._flight = None
            flight.finish(error=exc)
            raise
        except BaseException as exc:
            # Cancelled, or the HTTP client closed the flow after a network error.
            with self._mutex:
                if self._flight is flight:
                    self._flight = None
            if isinstance(exc, GeneratorExit):
                flight.finish(error=TransportError("the token request failed in the HTTP client"))
            else:
                flight.finish(retry=True)
            raise
        with self._mutex:
            self._held = self._hold(token)
            if self._flight is flight:
                self._flight = None
        flight.finish(token)
        return token

    # -- obtaining a token ----------------------------------------------------

    def _obtain(self, last: OAuthToken | None, background: bool) -> Op[tuple[OAuthToken, bool]]:
        """Under the store lock: adopt a newer stored token, else refresh or fetch, then save."""
        yield from self._wait_cooldown(background)
        key = self.store_key
        yield from StoreLock(key)
        try:
            stored: OAuthToken | None = yield from StoreLoad(key)
            if stored is not None and not stored.same_grant(last) and self._usable_stored(stored):
                self._emit(EventKind.STORE_HIT)
                yield from StoreUnlock(key)
                return stored, False
            base = stored if stored is not None else last
            token, fresh = yield from self._renew(base, background)
            yield from StoreSave(key, token)
        except Exception:
            yield from StoreUnlock(key)
            raise
        yield from StoreUnlock(key)
        return token, fresh

    def _renew(self, base: OAuthToken | None, background: bool) -> Op[tuple[OAuthToken, bool]]:
        if self.has_provider:
            with in_provider() as scope:
                raw = yield from CallProvider(base)
            token = self._coerce(raw)
            return token, any(t is token for t in scope.obtained)
        if base is not None and base.refresh_token:
            try:
                return (yield from self._refresh(base, background)), True
            except InvalidGrantError:
                # The refresh token is dead (revoked, or rotated by someone else):
                # forget it here and in the store, unless the store has moved on.
                yield from StoreClear(self.store_key, base)
                with self._mutex:
                    if self._held is not None and self._held.token.same_grant(base):
                        self._held = replace(
                            self._held, rejected=True, token=base.clone_with(refresh_token=None)
                        )
                if not self.credentials.can_fetch_unattended:
                    raise
        return (yield from self._fetch(background)), True

    def _coerce(self, raw: object) -> OAuthToken:
        if isinstance(raw, OAuthToken):
            return raw
        if isinstance(raw, Mapping):
            now = self.clock.time()
            data = dict(raw)
            if data.get("expires_at") is None and data.get("expires_in") is not None:
                data["expires_at"] = now + float(data["expires_in"])
            elif data.get("expires_at") is None:
                data["expires_at"] = now + self.settings.default_lifetime
            return OAuthToken.from_dict(data)
        if raw is None:
            raise AuthorizationRequiredError("token_provider returned no token")
        raise TypeError(f"token_provider must return an OAuthToken or a mapping, not {type(raw)}")

    def _fetch(self, background: bool = False) -> Op[OAuthToken]:
        creds = self.credentials
        if not creds.can_fetch_unattended:
            raise AuthorizationRequiredError(
                "no token: send the user to get_authorization_url(), then call fetch_token(code)"
            )
        endpoint = yield from self.token_endpoint()
        self._emit(EventKind.FETCH_STARTED)
        try:
            token = yield from self._exchange(grant_request(creds, endpoint), background)
            token = yield from self._check_id_token(token)
        except Exception as exc:
            self._emit(EventKind.FETCH_FAILED, exc)
            raise
        self._emit(EventKind.FETCH_SUCCEEDED)
        return token

    def _refresh(self, base: OAuthToken, background: bool = False) -> Op[OAuthToken]:
        assert base.refresh_token is not None
        endpoint = yield from self.token_endpoint()
        self._emit(EventKind.REFRESH_STARTED)
        try:
            request = refresh_request(self.credentials, endpoint, base.refresh_token)
            token = yield from self._exchange(request, background)
            token = yield from self._check_id_token(token, previous=base.id_token_claims)
        except Exception as exc:
            self._emit(EventKind.REFRESH_FAILED, exc)
            raise
        if token.refresh_token is None:
            # RFC 6749 §6: no new refresh token means the old one stays valid.
            token = token.clone_with(refresh_token=base.refresh_token)
        if token.id_token is None and base.id_token is not None:
            # OIDC Core §12.2 makes a new ID token optional: the user is the same.
            token = token.clone_with(id_token=base.id_token, id_token_claims=base.id_token_claims)
        self._emit(EventKind.REFRESH_SUCCEEDED)
        return token

    def _exchange(self, request: Any, background: bool) -> Op[OAuthToken]:
        """Send a token request; retry 429/5xx a bounded number of times with jitter."""
        s = self.settings
        attempts = 1 if background else 1 + s.max_retries
        for attempt in range(attempts):
            response = yield from Send(request)
            now = self.clock.time()
            skew = estimate_clock_skew(response, now)
            if skew is not None:
                self.clock_skew = skew
            try:
                return process_token_response(
                    response,
                    now=now,
                    default_lifetime=s.default_lifetime,
                    clock_skew=self.clock_skew or 0.0,
                )
            except RateLimitedError as exc:
                wait = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                remaining = self._start_cooldown(wait)
                exc.retry_after = remaining
                self._emit(EventKind.THROTTLED, exc, remaining)
                if attempt + 1 >= attempts or remaining > s.max_retry_wait:
                    raise
                yield from Sleep(remaining)
            except (OAuthError, InvalidResponseError) as exc:
                if not _is_server_failure(exc):
                    raise
                wait = self._backoff(attempt)
                if attempt + 1 >= attempts:
                    self._start_cooldown(wait)
                    self._emit(EventKind.THROTTLED, exc, wait)
                    raise
                yield from Sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        base: float = self.settings.backoff * 2.0**attempt
        return base * self._rng.uniform(0.5, 1.0)

    def _start_cooldown(self, seconds: float) -> float:
        """Start (or extend) the shared cooldown; returns the seconds left in it."""
        until = self.clock.monotonic() + seconds * (1 + self._rng.uniform(0, 0.1))
        with self._mutex:
            self._cooldown_until = max(self._cooldown_until, until)
        return self.cooldown_remaining()

    def _wait_cooldown(self, background: bool) -> Op[None]:
        remaining = self.cooldown_remaining()
        if remaining <= 0:
            return
        if background or remaining > self.settings.max_retry_wait:
            raise RateLimitedError(
                "the token endpoint asked to slow down; cooldown in progress",
                retry_after=remaining,
            )
        yield from Sleep(remaining)

    # -- endpoints --------------------------------------------------------------

    def metadata(self) -> Op[ServerMetadata | None]:
        """Metadata of ``credentials.issuer``, fetched once: RFC 8414's, else OpenID's."""
        issuer = self.credentials.issuer
        if self._metadata is not None or issuer is None:
            return self._metadata
        *first, last = metadata_requests(issuer, self.credentials.timeout)
        for request in first:
            response = yield from Send(request)
            if not is_absent(response):
                break
        else:
            response = yield from Send(last)
        self._metadata = process_metadata_response(response, issuer)
        return self._metadata

    def _endpoint(self, configured: str | None, name: str) -> Op[str]:
        if configured:
            return configured
        metadata = yield from self.metadata()
        value = getattr(metadata, name, None) if metadata is not None else None
        if not value:
            raise InvalidResponseError(f"no {name} configured or in the server metadata")
        self.credentials.check_url(value)
        return str(value)

    # -- ID tokens ----------------------------------------------------------------

    def _check_id_token(
        self,
        token: OAuthToken,
        *,
        nonce: str | None = None,
        max_age: float | None = None,
        code: str | None = None,
        previous: Mapping[str, Any] | None = None,
    ) -> Op[OAuthToken]:
        """Validate ``token.id_token`` (OIDC Core §3.1.3.7); the token with its claims."""
        if token.id_token is None:
            return token
        issuer = self.credentials.issuer
        metadata = yield from self.metadata()
        if issuer is None or metadata is None:
            raise IdTokenError(
                "the provider sent an ID token, which can only be checked against its issuer: "
                "give the credentials issuer= (its keys are found by discovery)"
            )
        if not metadata.jwks_uri:
            raise IdTokenError("the provider's metadata has no jwks_uri to check it with")
        expected = IdTokenExpectations(
            issuer=issuer,
            client_id=self.credentials.client_id,
            nonce=nonce,
            max_age=max_age,
            access_token=token.access_token,
            code=code,
            previous=previous,
        )
        now = self.clock.time() + (self.clock_skew or 0.0)
        keys = yield from self._signing_keys(metadata.jwks_uri, again=False)
        try:
            claims = validate_id_token(token.id_token, keys, expected, now=now)
        except UnknownSigningKey:
            # The provider may have rotated: ask again, at most once a minute.
            keys = yield from self._signing_keys(metadata.jwks_uri, again=True)
            claims = validate_id_token(token.id_token, keys, expected, now=now)
        return token.clone_with(id_token_claims=claims)

    def _signing_keys(self, jwks_uri: str, *, again: bool) -> Op[dict[str, VerificationKey]]:
        keys = self._jwks
        now = self.clock.monotonic()
        if keys is not None and (not again or now - self._jwks_fetched_at < _JWKS_MIN_INTERVAL):
            return keys
        self.credentials.check_url(jwks_uri)
        response = yield from Send(jwks_request(jwks_uri, self.credentials.timeout))
        keys = process_jwks_response(response)
        self._jwks, self._jwks_fetched_at = keys, now
        return keys

    def token_endpoint(self) -> Op[str]:
        return (yield from self._endpoint(self.credentials.token_url, "token_endpoint"))

    # -- explicit operations ---------------------------------------------------

    def fetch(self, code: str | None = None, code_verifier: str | None = None) -> Op[OAuthToken]:
        """A new token from the grant (or from ``code``), saved and made current."""

        def work() -> Op[OAuthToken]:
            if code is None:
                return (yield from self._fetch())
            creds = self.credentials
            if not isinstance(creds, AuthorizationCodeCredentials):
                raise TypeError("fetch_token(code) needs AuthorizationCodeCredentials")
            with self._mutex:
                sent = self._redeemable.pop(code, None)
                if sent is None and code_verifier is None and len(self._pending) == 1:
                    sent = self._pending.popitem()[1]  # parse_redirect was skipped
            verifier = code_verifier or (sent.code_verifier if sent is not None else None)
            endpoint = yield from self.token_endpoint()
            self._emit(EventKind.FETCH_STARTED)
            try:
                request = authorization_code_request(creds, endpoint, code, verifier)
                token = yield from self._exchange(request, False)
                token = yield from self._check_id_token(
                    token,
                    nonce=sent.nonce if sent is not None else None,
                    max_age=sent.max_age if sent is not None else None,
                    code=code,
                )
            except Exception as exc:
                self._emit(EventKind.FETCH_FAILED, exc)
                raise
            self._emit(EventKind.FETCH_SUCCEEDED)
            return token

        return (yield from self._explicit(work))

    def refresh(self) -> Op[OAuthToken]:
        """Refresh now (or fetch anew when there is no refresh token)."""

        def work() -> Op[OAuthToken]:
            held = self._held
            base = held.token if held is not None else None
            if base is not None and base.refresh_token:
                return (yield from self._refresh(base))
            return (yield from self._fetch())

        return (yield from self._explicit(work))

    def _explicit(self, work: Callable[[], Op[OAuthToken]]) -> Op[OAuthToken]:
        scope = _PROVIDER_FLIGHT.get()
        if scope is not None:
            # Called by token_provider inside a flight: just exchange, the flight saves.
            token = yield from work()
            scope.append(token)
            return token
        while True:
            with self._mutex:
                flight = self._flight
                if flight is None:
                    flight = self._flight = Flight()
                    break
                flight.waiters += 1
            joined = yield from self._join(flight)
            if joined is not None:
                return joined

        def locked() -> Op[tuple[OAuthToken, bool]]:
            yield from StoreLock(self.store_key)
            try:
                token = yield from work()
                yield from StoreSave(self.store_key, token)
            except Exception:
                yield from StoreUnlock(self.store_key)
                raise
            yield from StoreUnlock(self.store_key)
            return token, True

        return (yield from self._lead(flight, locked))

    def revoke(self, refresh_only: bool = False) -> Op[RevocationResult]:
        """RFC 7009 logout: forget the tokens here and in the store, then revoke them.

        Forgetting comes first and happens whatever the provider answers (see
        `keyturn.core.revoke`); the refresh token is revoked before the access
        token, which ``refresh_only`` leaves alone. Raises `RevocationError`
        only when the grant may still be alive at the provider.

        The logout runs as a flight (module docstring): an exchange already in
        flight ends first, so its token is the one revoked instead of becoming
        current after the logout.
        """
        if _PROVIDER_FLIGHT.get() is not None:
            # The flight token_provider runs in would be waited for by itself.
            raise RuntimeError("revoke() cannot be called from token_provider")
        while True:
            with self._mutex:
                flight = self._flight
                if flight is None:
                    flight = self._flight = Flight()
                    held, self._held = self._held, None
                    break
                flight.waiters += 1
            self._emit(EventKind.WAITING)
            yield from WaitFlight(flight)  # its outcome is not ours: just let it end
        try:
            return (yield from self._logout(held, refresh_only))
        finally:
            # However it ended (revoked, RevocationError, cancelled, closed by the
            # shell): the waiters try again, now as after a logout.
            with self._mutex:
                if self._flight is flight:
                    self._flight = None
            flight.finish(retry=True)

    def _logout(self, held: _Held | None, refresh_only: bool) -> Op[RevocationResult]:
        token = yield from self._forget(held)
        if token is None:
            return RevocationResult()
        endpoint = yield from self._endpoint(self.credentials.revocation_url, "revocation_endpoint")
        refresh = None
        if token.refresh_token:
            refresh = yield from self._revoke_one(endpoint, token.refresh_token, "refresh_token")
        if refresh_only:
            access = TokenRevocation(RevocationStatus.SKIPPED)
        else:
            access = yield from self._revoke_one(endpoint, token.access_token, "access_token")
        result = RevocationResult(refresh, access)
        fatal = result.fatal_error()
        if fatal is not None:
            raise RevocationError(result, fatal) from fatal
        return result

    def _forget(self, held: _Held | None) -> Op[OAuthToken | None]:
        """Drop the stored token; the newest of it and ``held`` is the one to revoke."""
        key = self.store_key
        yield from StoreLock(key)
        try:
            stored: OAuthToken | None = yield from StoreLoad(key)
            if stored is not None:
                yield from StoreClear(key, stored)
        except Exception:
            yield from StoreUnlock(key)
            raise
        yield from StoreUnlock(key)
        if stored is not None:
            return stored  # another process may have rotated the pair since
        return held.token if held is not None else None

    def _revoke_one(self, endpoint: str, value: str, hint: str) -> Op[TokenRevocation]:
        request = revocation_request(self.credentials, endpoint, value, hint)
        try:
            process_revocation_response((yield from Send(request)))
        except UnsupportedTokenTypeError as exc:
            return TokenRevocation(RevocationStatus.UNSUPPORTED, exc)
        except KeyturnError as exc:  # the provider said no, misbehaved, or was unreachable
            return TokenRevocation(RevocationStatus.FAILED, exc)
        return TokenRevocation(RevocationStatus.REVOKED)

    # -- authorization-code front channel ----------------------------------------

    def authorization_url(
        self, state: str | None, additional_params: Mapping[str, str] | None
    ) -> Op[str]:
        creds = self.credentials
        if not isinstance(creds, AuthorizationCodeCredentials):
            raise TypeError("get_authorization_url needs AuthorizationCodeCredentials")
        endpoint = yield from self._endpoint(creds.authorization_url, "authorization_endpoint")
        request: AuthorizationRequest = build_authorization_request(
            creds, endpoint, state=state, additional_params=additional_params
        )
        with self._mutex:
            self._pending[request.state] = request
            while len(self._pending) > 64:
                self._pending.popitem(last=False)
        return request.url

    def parse_redirect(self, url: str) -> str:
        """Check the redirect against a state this manager issued; return the code."""
        from urllib.parse import parse_qsl, urlsplit

        state = dict(parse_qsl(urlsplit(url).query)).get("state")
        with self._mutex:
            known = state is not None and state in self._pending
            sent = self._pending.pop(state) if known and state is not None else None
        if not known:
            raise StateMismatchError("the redirect's state was not issued by this client")
        issuer = self._metadata.issuer if self._metadata is not None else None
        code = _parse_redirect(url, state, issuer=issuer)
        with self._mutex:
            if sent is not None:
                self._redeemable[code] = sent
            while len(self._redeemable) > 64:
                self._redeemable.popitem(last=False)
        return code
