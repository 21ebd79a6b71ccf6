"""The guard for any framework: header in, claims out, or an `OAuthError` to answer.

    try:
        claims = authenticate(verifier, request.headers.get("authorization"), ["orders:read"])
    except OAuthError as error:
        answer = challenge(error, realm="orders")   # status, headers, body

The Starlette middleware and the FastAPI dependency are built on these.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from keyturn.guard.bearer import bearer_token, bearer_token_in, check_scopes
from keyturn.guard.claims import AccessTokenClaims
from keyturn.guard.verifier import TokenVerifier

__all__ = ["aauthenticate", "aauthenticate_asgi", "authenticate", "realm_of"]


def realm_of(verifier: TokenVerifier, realm: str | None = None) -> str:
    """The realm of the challenge (RFC 6750 §3): ``realm``, else the API's identifier
    (its audience; the first in order when it has several), so every integration
    names the same protection space even when none was configured."""
    return realm or min(verifier.audiences)


def authenticate(
    verifier: TokenVerifier,
    authorization: str | Iterable[str] | None,
    scopes: Collection[str] = (),
) -> AccessTokenClaims:
    """Verify the request's bearer token and its scopes (blocking)."""
    claims = verifier.verify(bearer_token(authorization))
    if scopes:
        check_scopes(claims, scopes)
    return claims


async def aauthenticate(
    verifier: TokenVerifier,
    authorization: str | Iterable[str] | None,
    scopes: Collection[str] = (),
) -> AccessTokenClaims:
    """Verify the request's bearer token and its scopes (async)."""
    claims = await verifier.averify(bearer_token(authorization))
    if scopes:
        check_scopes(claims, scopes)
    return claims


async def aauthenticate_asgi(
    verifier: TokenVerifier,
    headers: Iterable[tuple[bytes, bytes]],
    scopes: Collection[str] = (),
) -> AccessTokenClaims:
    """`aauthenticate` for an ASGI scope's raw ``headers``, whose token a header seen
    lately gives without parsing it again (`bearer_token_in`): the Starlette
    middleware's and the FastAPI dependency's path."""
    claims = await verifier.averify(bearer_token_in(headers))
    if scopes:
        check_scopes(claims, scopes)
    return claims
