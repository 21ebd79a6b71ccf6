"""OpenID Connect ID-token validation (Core §3.1.3.7), sans-IO: the caller brings the keys.

`validate_id_token` checks, in the spec's order: a compact JWS (an encrypted
ID token is refused, not decrypted); ``iss`` identical to the issuer; ``aud``
naming this client and, with several audiences, an ``azp`` that is this client
(extra audiences are trusted only then); the signature with the provider's
JWKS under an asymmetric algorithm (no ``none``, no HMAC); ``exp`` and ``iat``
within a small leeway of the provider's time; ``nonce`` equal to the one the
authorization request sent; ``auth_time`` present and recent enough when
``max_age`` was asked for; and ``at_hash`` / ``c_hash`` (§3.1.3.8, §3.3.2.11)
when present. A refreshed ID token (§12.2) must keep the original ``iss``,
``sub``, ``aud`` and ``auth_time``.

Keys come in as `VerificationKey` by ``kid`` from `keyturn.core.jose`; a
``kid`` the set does not know is `UnknownSigningKey`, so the caller can fetch
the JWKS again once (the provider rotated) and retry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from keyturn.core.errors import InvalidResponseError
from keyturn.core.jose import (
    SIGNING_ALGORITHMS,
    JoseFailure,
    VerificationKey,
    parse_compact,
    signing_registry,
    verify_signature,
)

__all__ = [
    "DEFAULT_LEEWAY",
    "IdTokenError",
    "IdTokenExpectations",
    "UnknownSigningKey",
    "token_hash",
    "validate_id_token",
]

DEFAULT_LEEWAY = 60.0
"""Seconds of clock difference tolerated on ``exp``, ``iat`` and ``auth_time``."""

_REGISTRY = signing_registry(SIGNING_ALGORITHMS)


class IdTokenError(InvalidResponseError):
    """The provider's ID token failed a check of OIDC Core §3.1.3.7; ``reason`` says which.

    The tokens that came with it are not used, saved or returned.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid ID token: {reason}")
        self.reason = reason


class UnknownSigningKey(IdTokenError):
    """The ID token names a ``kid`` the JWKS does not hold (yet): fetch the JWKS again."""


@dataclass(frozen=True, slots=True)
class IdTokenExpectations:
    """What this client knows that the ID token must match."""

    issuer: str
    client_id: str
    nonce: str | None = None
    """The ``nonce`` of the authorization request; ``None`` when none was sent."""
    max_age: float | None = None
    """The ``max_age`` of the authorization request, if any (then ``auth_time`` is required)."""
    access_token: str | None = None
    code: str | None = None
    previous: Mapping[str, Any] | None = None
    """The validated claims of the ID token this one replaces (a refresh, §12.2)."""
    leeway: float = DEFAULT_LEEWAY


def token_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash``: the left half of the hash that ``alg`` uses, base64url.

    The hash is the one of the JWS algorithm (SHA-256 for ``RS256``/``ES256``/
    ``PS256``, ...); for EdDSA with Ed25519 it is SHA-512 (OIDC Core errata).
    """
    if alg in ("EdDSA", "Ed25519"):
        digest = hashlib.sha512(value.encode("ascii")).digest()
    else:
        bits = alg[-3:]
        if bits not in ("256", "384", "512"):
            raise IdTokenError(f"no hash is defined for alg {alg!r}")
        digest = hashlib.new(f"sha{bits}", value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def _number(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise IdTokenError(f"no {name!r} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdTokenError(f"{name!r} is not a number")
    return float(value)


def _audiences(claims: Mapping[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    raise IdTokenError("'aud' is missing or malformed")


def _check_hash(claims: Mapping[str, Any], name: str, value: str | None, alg: str) -> None:
    claimed = claims.get(name)
    if claimed is None or value is None:
        return
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed, token_hash(value, alg)):
        raise IdTokenError(f"{name!r} does not match")


def validate_id_token(
    id_token: str,
    keys: Mapping[str, VerificationKey],
    expected: IdTokenExpectations,
    *,
    now: float,
    algorithms: Collection[str] = SIGNING_ALGORITHMS,
) -> dict[str, Any]:
    """The ID token's claims after every check of the module docstring, else `IdTokenError`.

    ``now`` is the provider's idea of the time (local time plus the estimated
    skew), in epoch seconds.
    """
    if id_token.count(".") != 2:
        raise IdTokenError("not a signed JWT (encrypted ID tokens are not supported)")
    try:
        parsed = parse_compact(id_token, _REGISTRY)
    except JoseFailure as exc:
        raise IdTokenError(str(exc)) from None
    alg = parsed.header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg not in SIGNING_ALGORITHMS:
        raise IdTokenError(f"alg {alg!r} is not an accepted asymmetric algorithm")
    key = _key_for(parsed.header.get("kid"), alg, keys)
    try:
        verify_signature(parsed, key, _REGISTRY)
        claims = parsed.payload()
    except JoseFailure as exc:
        raise IdTokenError(str(exc)) from None
    if not isinstance(claims, dict):
        raise IdTokenError("the payload is not a JSON object")
    _check_claims(claims, alg, expected, now)
    return claims


def _key_for(kid: object, alg: str, keys: Mapping[str, VerificationKey]) -> VerificationKey:
    if isinstance(kid, str) and kid:
        key = keys.get(kid)
        if key is None:
            raise UnknownSigningKey(f"signing key {kid!r} is not in the provider's JWKS")
        return key
    # No kid (Core §10.1 allows it with one key): the only key that fits the alg.
    fitting = [k for k in keys.values() if alg in k.algorithms]
    if len(fitting) != 1:
        raise UnknownSigningKey("the ID token names no kid and the JWKS has no single key for it")
    return fitting[0]


def _check_claims(
    claims: Mapping[str, Any], alg: str, expected: IdTokenExpectations, now: float
) -> None:
    if claims.get("iss") != expected.issuer:
        raise IdTokenError("'iss' is not the issuer")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise IdTokenError("no 'sub' claim")
    audiences = _audiences(claims)
    if expected.client_id not in audiences:
        raise IdTokenError("'aud' does not name this client")
    azp = claims.get("azp")
    if azp is not None and azp != expected.client_id:
        raise IdTokenError("'azp' is not this client")
    if len(audiences) > 1 and azp is None:
        raise IdTokenError("several audiences but no 'azp'")
    exp = _number(claims, "exp", required=True)
    iat = _number(claims, "iat", required=True)
    assert exp is not None
    assert iat is not None
    if now >= exp + expected.leeway:
        raise IdTokenError("expired ('exp' has passed)")
    if iat > now + expected.leeway:
        raise IdTokenError("issued in the future ('iat')")
    previous = expected.previous
    if previous is None:
        if expected.nonce is not None:
            nonce = claims.get("nonce")
            if not isinstance(nonce, str) or not hmac.compare_digest(nonce, expected.nonce):
                raise IdTokenError("'nonce' does not match the authorization request's")
    else:  # §12.2: same user, same client; auth_time, if sent, is the original one
        for name in ("sub", "aud", "auth_time"):
            if name in previous and name in claims and claims[name] != previous[name]:
                raise IdTokenError(f"a refreshed ID token changed {name!r}")
    auth_time = _number(claims, "auth_time", required=expected.max_age is not None)
    if expected.max_age is not None:
        assert auth_time is not None
        if now > auth_time + expected.max_age + expected.leeway:
            raise IdTokenError("'auth_time' is older than the max_age asked for")
    _check_hash(claims, "at_hash", expected.access_token, alg)
    _check_hash(claims, "c_hash", expected.code, alg)
