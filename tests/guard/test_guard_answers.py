"""One RFC 6750 answer whatever the framework (issue 17, item 14).

The same failures go through the Starlette middleware (and its endpoint-level
``require_scopes``), the FastAPI dependency (with and without its handler
installed) and the framework-free `challenge`; status, ``WWW-Authenticate``,
``Cache-Control`` and the JSON body must be the same everywhere, with a realm
even when none was configured.
"""

# No "from __future__ import annotations": FastAPI resolves the route signatures.

from typing import Annotated, Any

import pytest
from joserfc.jwk import Key

from tests.guard.guard_support import AUDIENCE, claims_for, sign

pytest.importorskip("fastapi", reason="FastAPI is not installed")

from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from keyturn.core.errors import OAuthError
from keyturn.guard import AccessTokenClaims, TokenVerifier
from keyturn.guard import fastapi as guard_fastapi
from keyturn.guard import starlette as guard_starlette
from keyturn.guard.authenticate import authenticate, realm_of
from keyturn.guard.bearer import challenge


def starlette_app(verifier: TokenVerifier) -> Starlette:
    async def orders(request: Request) -> JSONResponse:
        claims = guard_starlette.require_scopes(request, "orders:write")
        return JSONResponse({"sub": claims.subject})

    return Starlette(
        routes=[Route("/orders", orders)],
        middleware=[Middleware(guard_starlette.BearerAuthMiddleware, verifier=verifier)],
        exception_handlers=guard_starlette.exception_handlers(),
    )


def fastapi_app(verifier: TokenVerifier, *, handlers: bool) -> FastAPI:
    app = FastAPI(exception_handlers=dict(guard_fastapi.exception_handlers()) if handlers else None)
    app.state.token_verifier = verifier

    @app.get("/orders")
    async def orders(
        claims: Annotated[AccessTokenClaims, Depends(guard_fastapi.require_scopes("orders:write"))],
    ) -> dict[str, str]:
        return {"sub": claims.subject}

    return app


def cases(key: Key) -> dict[str, dict[str, str]]:
    return {
        "no token": {},
        "another scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "malformed header": {"Authorization": "Bearer"},
        "expired": {
            "Authorization": "Bearer " + sign(key, claims_for(exp=int(claims_for()["iat"]) - 60))
        },
        "wrong audience": {"Authorization": "Bearer " + sign(key, claims_for(aud="https://x"))},
        "missing scope": {"Authorization": "Bearer " + sign(key)},
    }


def answer(response: Any) -> tuple[int, str, str, Any]:
    return (
        response.status_code,
        response.headers.get("www-authenticate"),
        response.headers.get("cache-control"),
        response.json(),
    )


def expected(verifier: TokenVerifier, headers: dict[str, str]) -> tuple[int, str, str, Any]:
    try:
        authenticate(verifier, headers.get("Authorization"), ["orders:write"])
    except OAuthError as error:
        found = challenge(error, realm=realm_of(verifier))
        return (
            found.status_code,
            found.headers.get("WWW-Authenticate", ""),
            found.headers["Cache-Control"],
            found.body,
        )
    raise AssertionError("the request should have failed")


@pytest.mark.parametrize("framework", ["starlette", "fastapi", "fastapi+handlers"])
def test_every_framework_gives_the_same_answer(
    framework: str, verifier: TokenVerifier, rsa_key: Key
) -> None:
    app: Any = (
        starlette_app(verifier)
        if framework == "starlette"
        else fastapi_app(verifier, handlers=framework.endswith("handlers"))
    )
    client = TestClient(app)
    for name, headers in cases(rsa_key).items():
        got = answer(client.get("/orders", headers=headers))
        assert got == expected(verifier, headers), name
        status, www_authenticate, _, body = got
        assert www_authenticate.startswith(f'Bearer realm="{AUDIENCE}"'), name
        assert "detail" not in body, name
        if name in ("no token", "another scheme"):
            assert status == 401
            assert "error=" not in www_authenticate  # RFC 6750 §3.1
            assert body == {"error_description": "An access token is required"}
        else:
            assert body["error"] in ("invalid_request", "invalid_token", "insufficient_scope")
