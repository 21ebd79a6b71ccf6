"""Vendor-compatible routes: Candid Health, Square OAuth, Authlete token management.

Each module speaks one vendor's wire shape, so that vendor's own SDK works
unchanged against Keyturn, and does nothing itself: it parses, calls the
token endpoint's `grant_tokens` or `token_service`, and shapes the answer.
A token minted through any of them is the same record the RFC endpoints,
the admin API and the CLI see.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from keyturn.server.vendors import authlete, candid, square


def routes() -> list[BaseRoute]:
    """Every vendor route, for `create_app`'s list."""
    candid_routes: list[BaseRoute] = [
        Route(path, candid.candid_token_endpoint, methods=["POST"]) for path in candid.PATHS
    ]
    return [*candid_routes, *square.routes(), *authlete.routes()]


FAST_PATHS: dict[str, ASGIApp] = dict.fromkeys(candid.PATHS, candid.candid_token_app)
"""``POST`` paths `KeyturnApp` hands straight to their ASGI app: the token requests."""
