"""Protect FastAPI routes with a dependency: ``Depends(require_scopes("orders:read"))``.

    app = FastAPI()
    app.state.token_verifier = TokenVerifier("https://auth.example.com", "orders-api")

    @app.get("/orders")
    async def list_orders(
        claims: Annotated[AccessTokenClaims, Depends(require_scopes("orders:read"))],
    ): ...

The dependency uses ``verifier=`` when given, else ``app.state.token_verifier``
(one verifier per app shares one JWKS cache). Failures are raised as
`fastapi.HTTPException` with the RFC 6750 status and ``WWW-Authenticate``
header, and the RFC 6749 error object as ``detail``. The route also shows up
in OpenAPI with an HTTP bearer security scheme.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keyturn.core.errors import OAuthError
from keyturn.guard.authenticate import aauthenticate
from keyturn.guard.bearer import challenge
from keyturn.guard.claims import AccessTokenClaims
from keyturn.guard.verifier import TokenVerifier

__all__ = ["STATE_VERIFIER", "require_scopes"]

#: ``app.state.token_verifier`` is the verifier used when none is passed.
STATE_VERIFIER = "token_verifier"

# Only for the OpenAPI document: the guard reads the header itself, because
# HTTPBearer would not tell a missing token (401) from a malformed header (400).
_openapi_scheme = HTTPBearer(auto_error=False)


def require_scopes(
    *scopes: str, verifier: TokenVerifier | None = None, realm: str | None = None
) -> Callable[..., Awaitable[AccessTokenClaims]]:
    """A dependency that returns the verified claims, if they carry every scope."""

    async def dependency(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_openapi_scheme)],
    ) -> AccessTokenClaims:
        chosen = verifier or getattr(request.app.state, STATE_VERIFIER, None)
        if not isinstance(chosen, TokenVerifier):
            raise RuntimeError(
                "keyturn.guard.fastapi: pass verifier= or set app.state.token_verifier"
            )
        try:
            return await aauthenticate(chosen, request.headers.getlist("authorization"), scopes)
        except OAuthError as error:
            answer = challenge(error, realm=realm)
            raise HTTPException(
                answer.status_code, detail=answer.body or None, headers=answer.headers
            ) from error

    return dependency
