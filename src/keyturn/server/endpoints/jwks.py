"""``GET /.well-known/jwks.json`` (RFC 7517) and the PEM of the signing key.

Public keys only. The JWKS may be cached briefly by verifiers; rotation
publishes a key long before it signs, so a cached copy is never behind.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from keyturn.core.errors import InvalidRequestError
from keyturn.server.context import get_context

JWKS_MAX_AGE = 60


async def jwks_endpoint(request: Request) -> Response:
    body = await get_context(request).keyring.jwks_body()
    return Response(
        body,
        media_type="application/jwk-set+json",
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )


async def public_key_endpoint(request: Request) -> Response:
    """The PEM public key that signs now, or of ``?kid=`` while it is published."""
    kid = request.query_params.get("kid")
    pem = await get_context(request).keyring.public_pem(kid)
    if pem is None:
        raise InvalidRequestError(f"no published key has kid {kid!r}", status_code=404)
    return PlainTextResponse(
        pem,
        media_type="application/x-pem-file",
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )
