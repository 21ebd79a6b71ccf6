"""``GET /.well-known/oauth-authorization-server`` (RFC 8414): only what really works."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from keyturn.core.paths import (
    AUTHORIZE_PATH,
    INTROSPECTION_PATH,
    JWKS_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
)
from keyturn.server.context import get_context
from keyturn.server.grants.registry import ADVERTISED_GRANTS
from keyturn.server.responses import json_response

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
# Public clients authenticate with their client_id alone ("none") wherever they may
# act: at the token endpoint, and to revoke or introspect their own tokens.
PUBLIC_AUTH_METHODS = [*CLIENT_AUTH_METHODS, "none"]
# "plain" is accepted only from clients registered with allow_plain_pkce, so it is
# nothing any client may rely on (RFC 8414 §2 lists what clients may use).
PKCE_METHODS = ["S256"]


def server_metadata(issuer: str, signing_algs: list[str]) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "token_endpoint": issuer + TOKEN_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "grant_types_supported": list(ADVERTISED_GRANTS),
        "authorization_endpoint": issuer + AUTHORIZE_PATH,
        "token_endpoint_auth_methods_supported": PUBLIC_AUTH_METHODS,
        "revocation_endpoint": issuer + REVOCATION_PATH,
        "revocation_endpoint_auth_methods_supported": PUBLIC_AUTH_METHODS,
        "introspection_endpoint": issuer + INTROSPECTION_PATH,
        "introspection_endpoint_auth_methods_supported": PUBLIC_AUTH_METHODS,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": PKCE_METHODS,
        "authorization_response_iss_parameter_supported": True,
        # RFC 9068 access tokens are signed with these (JWKS ``alg`` values).
        "access_token_signing_alg_values_supported": signing_algs,
    }


async def _document(
    request: Request, build: Callable[[str, list[str]], dict[str, Any]]
) -> Response:
    """A discovery document: public, cacheable for five minutes."""
    ctx = get_context(request)
    return json_response(
        build(ctx.settings.issuer_url, await ctx.keyring.published_algs()),
        headers={"Cache-Control": "public, max-age=300"},
        no_store=False,
    )


async def metadata_endpoint(request: Request) -> Response:
    return await _document(request, server_metadata)


def openid_metadata(issuer: str, signing_algs: list[str]) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 §3: the OAuth metadata plus the OIDC fields."""
    return {
        **server_metadata(issuer, signing_algs),
        "userinfo_endpoint": issuer + USERINFO_PATH,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing_algs,
        "scopes_supported": ["openid", "profile"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "preferred_username",
            "name",
        ],
    }


async def openid_configuration_endpoint(request: Request) -> Response:
    return await _document(request, openid_metadata)
