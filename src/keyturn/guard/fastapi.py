"""Protect FastAPI routes with a dependency: ``Depends(require_scopes("orders:read"))``.

    app = FastAPI()
    app.state.token_verifier = TokenVerifier("https://auth.example.com", "orders-api")

    @app.get("/orders")
    async def list_orders(
        claims: Annotated[AccessTokenClaims, Depends(require_scopes("orders:read"))],
    ): ...

The dependency uses ``verifier=`` when given, else ``app.state.token_verifier``
(one verifier per app shares one JWKS cache). The route also shows up in
OpenAPI with an HTTP bearer security scheme.

Failures answer exactly as the Starlette middleware and `keyturn.guard.challenge`
do: the RFC 6750 status and ``WWW-Authenticate`` (realm: ``realm=``, else the
API's audience) and the RFC 6749 error object as the body, not FastAPI's
``{"detail": ...}``. The dependency raises `BearerChallenge`, whose handler
(`exception_handlers`) writes that answer. So that an app works without being
told, the dependency adds the handler to the app's handlers on its first
failure, through the per-request table Starlette's ``ExceptionMiddleware``
keeps in ``scope["starlette.exception_handlers"]`` (an app's own handler for
`BearerChallenge`, if any, is kept). Pass ``exception_handlers()`` to
``FastAPI(...)`` to install it up front.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keyturn.core.errors import OAuthError
from keyturn.guard.authenticate import aauthenticate_asgi, realm_of
from keyturn.guard.bearer import Challenge, challenge
from keyturn.guard.claims import AccessTokenClaims
from keyturn.guard.verifier import TokenVerifier

__all__ = ["STATE_VERIFIER", "BearerChallenge", "exception_handlers", "require_scopes"]

#: ``app.state.token_verifier`` is the verifier used when none is passed.
STATE_VERIFIER = "token_verifier"

# Only for the OpenAPI document: the guard reads the header itself, because
# HTTPBearer would not tell a missing token (401) from a malformed header (400).
_openapi_scheme = HTTPBearer(auto_error=False)


class BearerChallenge(HTTPException):
    """A guard failure on its way to the client: the RFC 6750 answer it carries."""

    def __init__(self, answer: Challenge) -> None:
        super().__init__(answer.status_code, detail=answer.body, headers=answer.headers)
        self.answer = answer


async def _answer(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BearerChallenge)
    answer = exc.answer
    return JSONResponse(answer.body, status_code=answer.status_code, headers=answer.headers)


def exception_handlers() -> Mapping[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """For ``FastAPI(exception_handlers=...)``: guard failures as RFC 6750 answers."""
    return {BearerChallenge: _answer}


def _ensure_handler(request: Request) -> None:
    tables = request.scope.get("starlette.exception_handlers")
    if isinstance(tables, tuple) and tables and isinstance(tables[0], dict):
        tables[0].setdefault(BearerChallenge, _answer)


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
            return await aauthenticate_asgi(chosen, request.scope["headers"], scopes)
        except OAuthError as error:
            _ensure_handler(request)
            raise BearerChallenge(challenge(error, realm=realm_of(chosen, realm))) from error

    return dependency
