"""A small orders API protected by the Keyturn guard: the README's end-to-end demo.

    python examples/demo_api.py --issuer http://127.0.0.1:8000 --port 8001

``GET /health`` is public, ``GET /me`` needs any valid token, ``GET /orders``
needs the ``orders:read`` scope. Tokens are verified against the issuer's
published JWKS; an expired token gets ``401 invalid_token``, which is the
signal for the client SDK to fetch a new one.

Needs the ``server`` extra (Starlette and uvicorn).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keyturn.guard import TokenVerifier
from keyturn.guard.starlette import (
    BearerAuthMiddleware,
    access_token,
    exception_handlers,
    require_scopes,
)

ORDERS = [
    {"id": "ord_1001", "item": "brass key blank", "quantity": 3},
    {"id": "ord_1002", "item": "pin tumbler set", "quantity": 1},
]


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def me(request: Request) -> JSONResponse:
    claims = access_token(request)
    return JSONResponse(
        {"sub": claims.subject, "client_id": claims.client_id, "scopes": sorted(claims.scopes)}
    )


async def list_orders(request: Request) -> JSONResponse:
    claims = require_scopes(request, "orders:read")
    return JSONResponse({"orders": ORDERS, "for": claims.subject})


def build_app(verifier: TokenVerifier, *, realm: str = "demo-api") -> Starlette:
    """The demo app around a ready verifier (tests build it with a mocked issuer)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with verifier:
            yield

    return Starlette(
        routes=[Route("/health", health), Route("/me", me), Route("/orders", list_orders)],
        middleware=[
            Middleware(
                BearerAuthMiddleware, verifier=verifier, realm=realm, exempt_paths=["/health"]
            )
        ],
        exception_handlers=exception_handlers(realm=realm),
        lifespan=lifespan,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", required=True, help="the Keyturn server's issuer URL")
    parser.add_argument(
        "--audience", help="this API's identifier in the tokens' aud (default: the issuer)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--leeway", type=float, default=10.0, help="clock-skew seconds")
    args = parser.parse_args(argv)
    verifier = TokenVerifier(args.issuer, args.audience or args.issuer, leeway=args.leeway)
    uvicorn.run(build_app(verifier), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
