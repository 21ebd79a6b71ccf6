"""The steps token-endpoint grants share (cf. node-oidc-provider ``helpers/grant_common.js``).

A grant module imports what it needs from here, so a new grant has one place
to look for the shared rules: required parameters, the public-client refusal,
the access-token lifetime, the requested audience, the ID token, and the
decision/issuance types and helpers that live in their own modules.
"""

from __future__ import annotations

from typing import Any

from keyturn.core.errors import InvalidRequestError, UnauthorizedClientError
from keyturn.server.context import ServerContext
from keyturn.server.id_tokens import OPENID, make_id_token
from keyturn.server.issuance import IssuedToken, TokenDecision
from keyturn.server.refresh_tokens import build_pair
from keyturn.server.scopes import grant_audience, grant_scopes, parse_scope
from keyturn.server.settings import Settings
from keyturn.storage.records import Client, User

__all__ = [
    "TokenDecision",
    "access_lifetime",
    "add_id_token",
    "build_pair",
    "grant_audience",
    "grant_scopes",
    "parse_scope",
    "refuse_public",
    "requested_audience",
    "require",
    "wants_id_token",
]


def require(params: dict[str, str], name: str) -> str:
    """The non-empty value of a required parameter, else ``invalid_request``."""
    value = params.get(name)
    if not value:
        raise InvalidRequestError(f"the {name} parameter is required")
    return value


def refuse_public(client: Client, grant_type: str) -> None:
    """A grant that needs a client secret: a public client is ``unauthorized_client``."""
    if client.is_public:
        raise UnauthorizedClientError(f"a public client cannot use the {grant_type} grant")


def access_lifetime(client: Client, settings: Settings) -> int:
    """The client's own access-token lifetime, else the server's."""
    return client.access_token_lifetime or settings.access_token_lifetime


def requested_audience(params: dict[str, str]) -> str | None:
    """``audience`` or, failing that, the RFC 8707 ``resource`` parameter."""
    return params.get("audience") or params.get("resource")


def wants_id_token(decision: TokenDecision) -> bool:
    """OpenID Connect: ``openid`` was granted to a user who authenticated at a known time."""
    return OPENID in decision.scopes and decision.auth_time is not None


async def add_id_token(
    ctx: ServerContext,
    response: dict[str, Any],
    decision: TokenDecision,
    user: User | None,
    access: IssuedToken,
    *,
    nonce: str | None = None,
) -> None:
    """Put an ID token for ``user`` into ``response`` when `wants_id_token` (Core §3.1.3.3).

    Its ``auth_time`` is the decision's, its ``at_hash`` binds it to ``access``.
    """
    if user is None or not wants_id_token(decision):
        return
    assert decision.auth_time is not None  # wants_id_token checked it
    response["id_token"] = await make_id_token(
        ctx,
        client_id=decision.client.client_id,
        user=user,
        scopes=decision.scopes,
        auth_time=decision.auth_time,
        nonce=nonce,
        access_token=access.access_token,
    )
