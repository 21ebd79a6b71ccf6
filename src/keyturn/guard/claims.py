"""RFC 9068 access-token claims: validated, then typed.

Pure functions of the decoded header/payload and an injected ``now``: no
clock, no key, no network, so every rule here is a one-line unit test.
Failures raise `InvalidTokenError` with a short public description (RFC 6750
§3.1 ``error_description``) and the precise reason as private ``detail``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from keyturn.core.errors import InvalidTokenError

__all__ = ["AccessTokenClaims", "check_header", "check_time_window", "validate_claims"]

# RFC 9068 §4: "at+jwt", optionally with the "application/" prefix, case-insensitive.
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


class AccessTokenClaims(NamedTuple):
    """What a protected endpoint needs to know about the caller: typed and immutable.

    ``raw`` keeps every claim (read-only) for custom ones such as ``auth_time``
    or ``acr``. A NamedTuple rather than a frozen dataclass: it is built once
    per request, and a frozen dataclass's ``__init__`` cost a third of the
    guard's whole overhead over a bare signature check.
    """

    subject: str
    client_id: str
    scopes: frozenset[str]
    issuer: str
    audience: tuple[str, ...]
    expires_at: int
    issued_at: int
    jwt_id: str
    not_before: int | None
    raw: Mapping[str, Any]

    def has_scopes(self, *scopes: str) -> bool:
        """True when every given scope was granted."""
        return self.scopes.issuperset(scopes)


def check_header(header: Mapping[str, Any], algorithms: Collection[str]) -> str:
    """Check the unverified JOSE header; return its ``kid``.

    Done before any key lookup so that ``alg: none``, HMAC and foreign token
    types are refused without touching the key cache.
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise InvalidTokenError(
            "The access token is signed with an algorithm this API does not accept",
            detail=f"alg {alg!r} not in allow-list {sorted(algorithms)}",
        )
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES:
        raise InvalidTokenError(
            "The token is not a JWT access token", detail=f"typ {typ!r} is not at+jwt"
        )
    if "crit" in header:
        raise InvalidTokenError(
            "The access token uses an unsupported JOSE extension", detail="crit header present"
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidTokenError("The access token names no signing key", detail="kid missing")
    return kid


def validate_claims(
    payload: Any,
    *,
    issuer: str,
    audiences: frozenset[str],
    now: float,
    leeway: float,
) -> AccessTokenClaims:
    """Validate the RFC 9068 §2.2 claims and time window, then type them."""
    # A dict, not any Mapping: it comes from json.loads, and the ABC check is
    # measurable on the hot path (benchmarks/verify_overhead.py).
    if not isinstance(payload, dict):
        raise InvalidTokenError("The access token is malformed", detail="payload is not an object")

    iss = _string(payload, "iss")
    if iss != issuer:
        raise InvalidTokenError(
            "The access token was issued by another issuer", detail=f"iss {iss!r} != {issuer!r}"
        )

    aud = _audience(payload)
    if audiences.isdisjoint(aud):
        raise InvalidTokenError(
            "The access token is not meant for this API",
            detail=f"aud {list(aud)} has none of {sorted(audiences)}",
        )

    exp = _time(payload, "exp")
    iat = _time(payload, "iat")
    nbf = _time(payload, "nbf") if "nbf" in payload else None
    check_time_window(exp, iat, nbf, now=now, leeway=leeway)

    scope = payload.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidTokenError("The access token is malformed", detail="scope is not a string")

    # Positional: keyword construction of a NamedTuple costs three times as much.
    return AccessTokenClaims(
        _string(payload, "sub"),
        _string(payload, "client_id"),
        frozenset(scope.split()),
        iss,
        aud,
        exp,
        iat,
        _string(payload, "jti"),
        nbf,
        MappingProxyType(payload),  # the parsed dict is ours alone: no copy
    )


def check_time_window(exp: int, iat: int, nbf: int | None, *, now: float, leeway: float) -> None:
    """The time claims against ``now``: checked on every use, even of a token seen before."""
    if now >= exp + leeway:
        raise InvalidTokenError("The access token expired", detail=f"exp {exp} <= now {now:.0f}")
    if iat > now + leeway:
        raise InvalidTokenError(
            "The access token was issued in the future", detail=f"iat {iat} > now {now:.0f}"
        )
    if nbf is not None and nbf > now + leeway:
        raise InvalidTokenError(
            "The access token is not valid yet", detail=f"nbf {nbf} > now {now:.0f}"
        )


def _string(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidTokenError(
            "The access token is malformed", detail=f"claim {name!r} missing or not a string"
        )
    return value


def _time(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    # Exact types: bool is an int subclass, and "exp": true is not a time.
    if type(value) is int:  # the usual case, and not a bool
        return value
    if type(value) is not float or not math.isfinite(value):  # json allows NaN, Infinity
        raise InvalidTokenError(
            "The access token is malformed", detail=f"claim {name!r} missing or not a number"
        )
    return int(value)


def _audience(payload: dict[str, Any]) -> tuple[str, ...]:
    aud = payload.get("aud")
    if isinstance(aud, str) and aud:
        return (aud,)
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    raise InvalidTokenError(
        "The access token is malformed", detail="claim 'aud' missing or not a string/list"
    )
