"""``GET /.well-known/oauth-authorization-server`` (RFC 8414): only what really works."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from keyturn.server.context import get_context
from keyturn.server.grants import HANDLERS
from keyturn.server.responses import json_response

TOKEN_PATH = "/oauth/token"
JWKS_PATH = "/.well-known/jwks.json"
PUBLIC_KEY_PATH = "/oauth/public-key.pem"
REVOCATION_PATH = "/oauth/revoke"
INTROSPECTION_PATH = "/oauth/introspect"
ADMIN_PATH = "/admin/v1"
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def server_metadata(issuer: str, signing_algs: list[str]) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "token_endpoint": issuer + TOKEN_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "grant_types_supported": list(HANDLERS),
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint": issuer + REVOCATION_PATH,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint": issuer + INTROSPECTION_PATH,
        "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "response_types_supported": [],
        # RFC 9068 access tokens are signed with these (JWKS ``alg`` values).
        "access_token_signing_alg_values_supported": signing_algs,
    }


async def metadata_endpoint(request: Request) -> Response:
    ctx = get_context(request)
    return json_response(
        server_metadata(ctx.settings.issuer_url, await ctx.keyring.published_algs()),
        headers={"Cache-Control": "public, max-age=300"},
        no_store=False,
    )
