"""RFC 6750 on the wire: read the bearer token from a request, answer a challenge.

Framework-free: `bearer_token` takes the request's ``Authorization`` header
values, `challenge` turns any guard error into a status, headers and a JSON
body. The Starlette and FastAPI integrations, and `authenticate` for other
frameworks, are thin wrappers around these two.

RFC 6750 §3.1 rules applied here: a request without credentials (no header,
or another scheme such as Basic) gets a 401 challenge *without* an ``error``
attribute (and a body that only says, in words, that a token is required,
so a person reading it is not left with an empty answer); a malformed header
is ``invalid_request`` (400); a bad token is
``invalid_token`` (401); a missing scope is ``insufficient_scope`` (403) with a
``scope`` attribute naming what is needed.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from keyturn.core.bearer import MalformedAuthorizationError, bearer_credentials, www_authenticate
from keyturn.core.errors import (
    InsufficientScopeError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
)
from keyturn.core.verified import DEFAULT_SIZE
from keyturn.guard.claims import AccessTokenClaims

__all__ = [
    "Challenge",
    "MissingScopeError",
    "MissingTokenError",
    "bearer_token",
    "bearer_token_in",
    "challenge",
    "check_scopes",
]


class MissingTokenError(InvalidTokenError):
    """The request carried no bearer token: 401, and no ``error`` in the challenge."""

    def __init__(self) -> None:
        super().__init__("An access token is required")


class MissingScopeError(InsufficientScopeError):
    """The token is valid but lacks ``scopes`` (all of which the resource needs)."""

    def __init__(self, scopes: Collection[str], *, missing: Collection[str] = ()) -> None:
        self.scopes = tuple(scopes)
        names = " ".join(sorted(missing or scopes))
        super().__init__(f"The access token lacks the scope {names}")


def bearer_token(authorization: str | Iterable[str] | None) -> str:
    """The bearer token of a request, given its ``Authorization`` header value(s).

    Raises `MissingTokenError` when there is none (or another scheme is used)
    and `InvalidRequestError` when the header is malformed or repeated.
    """
    try:
        token = bearer_credentials(authorization)
    except MalformedAuthorizationError as exc:
        raise InvalidRequestError(str(exc)) from None
    if token is None:
        raise MissingTokenError()
    return token


MAX_REMEMBERED_HEADER = 2048
"""Longest ``Authorization`` value `bearer_token_in` remembers, in bytes. A JWT
access token is 0.4-1.5 kB; the 4,096 values remembered, each with its token,
take about 17 MB at worst and 4-6 MB for such tokens."""


def bearer_token_in(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """`bearer_token` of an ASGI scope's raw ``headers``.

    A header value seen lately is not decoded, split and checked again: a client
    sends one token thousands of times, and under load those steps cost a
    server 8 µs of CPU a request, as much as everything else the guard does for
    a token it remembers. The same value also yields the same string object, so
    the verifier's memory finds it without hashing or comparing it again.
    """
    values = [value for name, value in headers if name == b"authorization"]
    if len(values) == 1 and len(values[0]) <= MAX_REMEMBERED_HEADER:
        return _token_of(values[0])
    return bearer_token([value.decode("latin-1") for value in values])


@functools.lru_cache(maxsize=DEFAULT_SIZE)
def _token_of(value: bytes) -> str:
    # Only what parses is remembered: lru_cache keeps no exception.
    return bearer_token(value.decode("latin-1"))


def check_scopes(claims: AccessTokenClaims, scopes: Collection[str]) -> None:
    """Raise `MissingScopeError` unless the token was granted every one of ``scopes``."""
    missing = set(scopes) - claims.scopes
    if missing:
        raise MissingScopeError(scopes, missing=missing)


@dataclass(frozen=True, slots=True)
class Challenge:
    """An error answer, ready for any framework: status, headers, JSON body."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] = field(default_factory=dict)


def challenge(error: OAuthError, *, realm: str | None = None) -> Challenge:
    """The RFC 6750 §3 answer for a guard error."""
    headers = dict(error.headers)
    if isinstance(error, MissingTokenError):
        attributes: dict[str, str | None] = {}
        body: dict[str, str] = {"error_description": error.description or ""}
    else:
        scope = " ".join(error.scopes) if isinstance(error, MissingScopeError) else None
        attributes = {"error": error.error, "error_description": error.description, "scope": scope}
        body = error.to_dict()
    if error.status_code in (400, 401, 403):
        headers["WWW-Authenticate"] = www_authenticate(realm=realm, **attributes)
    headers.setdefault("Cache-Control", "no-store")
    return Challenge(error.status_code, headers, body)
