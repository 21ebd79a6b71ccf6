"""RFC 6750 on the wire: read the bearer token from a request, answer a challenge.

Framework-free: `bearer_token` takes the request's ``Authorization`` header
values, `challenge` turns any guard error into a status, headers and a JSON
body. The Starlette and FastAPI integrations, and `authenticate` for other
frameworks, are thin wrappers around these two.

RFC 6750 §3.1 rules applied here: a request without credentials (no header,
or another scheme such as Basic) gets a 401 challenge *without* an ``error``
attribute; a malformed header is ``invalid_request`` (400); a bad token is
``invalid_token`` (401); a missing scope is ``insufficient_scope`` (403) with a
``scope`` attribute naming what is needed.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from keyturn.core.errors import (
    InsufficientScopeError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
)
from keyturn.guard.claims import AccessTokenClaims

__all__ = [
    "Challenge",
    "MissingScopeError",
    "MissingTokenError",
    "bearer_token",
    "challenge",
    "check_scopes",
]

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 6750 §3: error_description and scope values are %x20-21 / %x23-5B / %x5D-7E
_NOT_QUOTABLE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


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
    if authorization is None:
        raise MissingTokenError()
    values = [authorization] if isinstance(authorization, str) else list(authorization)
    if not values:
        raise MissingTokenError()
    if len(values) > 1:
        raise InvalidRequestError("Send exactly one Authorization header")
    scheme, _, credentials = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingTokenError()
    credentials = credentials.strip(" ")
    if not _B64TOKEN.fullmatch(credentials):
        raise InvalidRequestError("The Authorization header is not 'Bearer <token>'")
    return credentials


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
    params: list[tuple[str, str]] = []
    if realm:
        params.append(("realm", realm))
    body: dict[str, str] = {}
    if not isinstance(error, MissingTokenError):
        body = error.to_dict()
        params.append(("error", error.error))
        if error.description:
            params.append(("error_description", error.description))
        if isinstance(error, MissingScopeError):
            params.append(("scope", " ".join(error.scopes)))
    if error.status_code in (400, 401, 403):
        rendered = ", ".join(f'{name}="{_quotable(value)}"' for name, value in params)
        headers["WWW-Authenticate"] = f"Bearer {rendered}" if rendered else "Bearer"
    headers.setdefault("Cache-Control", "no-store")
    return Challenge(error.status_code, headers, body)


def _quotable(value: str) -> str:
    return _NOT_QUOTABLE.sub("", value)
