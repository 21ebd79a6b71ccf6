"""Protect a Starlette app: `BearerAuthMiddleware` plus per-route scope checks.

    app = Starlette(
        routes=[Route("/orders", list_orders)],
        middleware=[Middleware(BearerAuthMiddleware, verifier=verifier)],
        exception_handlers=exception_handlers(),
    )

    async def list_orders(request):
        claims = require_scopes(request, "orders:read")   # 403 insufficient_scope if not

The middleware verifies every HTTP and WebSocket request (except
``exempt_paths``) and stores the claims as ``request.state.access_token``.
It is a pure ASGI middleware, so it does not buffer or wrap streaming bodies.
A rejected WebSocket is closed with code 1008 (policy violation) before accept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from keyturn.core.errors import OAuthError
from keyturn.guard.authenticate import aauthenticate_asgi, realm_of
from keyturn.guard.bearer import MissingTokenError, challenge, check_scopes
from keyturn.guard.claims import AccessTokenClaims
from keyturn.guard.verifier import TokenVerifier

__all__ = [
    "STATE_KEY",
    "BearerAuthMiddleware",
    "access_token",
    "challenge_response",
    "exception_handlers",
    "require_scopes",
]

#: ``request.state.access_token`` holds the verified `AccessTokenClaims`.
STATE_KEY = "access_token"
# The middleware's realm, for errors raised later in the endpoint (require_scopes).
_REALM_KEY = "keyturn_realm"


class BearerAuthMiddleware:
    """Reject requests without a valid bearer token (and ``scopes``) per RFC 6750."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        *,
        scopes: Collection[str] = (),
        realm: str | None = None,
        exempt_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.scopes = tuple(scopes)
        self.realm = realm_of(verifier, realm)
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[_REALM_KEY] = self.realm
        try:
            # From the ASGI scope itself (names arrive lower-cased): building a
            # Headers object cost as much as verifying a token the verifier remembers.
            claims = await aauthenticate_asgi(self.verifier, scope["headers"], self.scopes)
        except OAuthError as error:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": error.error})
            else:
                await challenge_response(error, realm=self.realm)(scope, receive, send)
            return
        state[STATE_KEY] = claims
        await self.app(scope, receive, send)


def access_token(connection: HTTPConnection) -> AccessTokenClaims:
    """The claims the middleware verified; fails closed (401) when it did not run."""
    claims = connection.scope.get("state", {}).get(STATE_KEY)
    if not isinstance(claims, AccessTokenClaims):
        raise MissingTokenError()
    return claims


def require_scopes(connection: HTTPConnection, *scopes: str) -> AccessTokenClaims:
    """The verified claims, if they carry every one of ``scopes``; else 403."""
    claims = access_token(connection)
    check_scopes(claims, scopes)
    return claims


def challenge_response(error: OAuthError, *, realm: str | None = None) -> Response:
    """The RFC 6750 answer for ``error`` as a Starlette response."""
    answer = challenge(error, realm=realm)
    return JSONResponse(answer.body, status_code=answer.status_code, headers=answer.headers)


def exception_handlers(
    realm: str | None = None,
) -> Mapping[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """For ``Starlette(exception_handlers=...)``: answer guard errors raised in endpoints
    (with ``realm``, else the middleware's)."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OAuthError)
        chosen = realm or request.scope.get("state", {}).get(_REALM_KEY)
        return challenge_response(exc, realm=chosen)

    return {OAuthError: handle}
