"""Resource-server guard: verify Keyturn access tokens where the API runs.

The base install (httpx2 + joserfc) gives everything framework-free here.
Framework and store integrations are separate modules that import their
dependency only when imported themselves:

- `keyturn.guard.starlette` — ASGI middleware and per-route scope checks
- `keyturn.guard.fastapi` — the ``require_scopes(...)`` dependency
- `keyturn.guard.redis_denylist` — the shared revocation deny-list
"""

from keyturn.guard.authenticate import aauthenticate, aauthenticate_asgi, authenticate
from keyturn.guard.bearer import (
    Challenge,
    MissingScopeError,
    MissingTokenError,
    bearer_token,
    challenge,
    check_scopes,
)
from keyturn.guard.claims import AccessTokenClaims
from keyturn.guard.revocation import DenyList, DenyListUnavailableError, Introspection
from keyturn.guard.verifier import DEFAULT_ALGORITHMS, TokenVerifier

__all__ = [
    "DEFAULT_ALGORITHMS",
    "AccessTokenClaims",
    "Challenge",
    "DenyList",
    "DenyListUnavailableError",
    "Introspection",
    "MissingScopeError",
    "MissingTokenError",
    "TokenVerifier",
    "aauthenticate",
    "aauthenticate_asgi",
    "authenticate",
    "bearer_token",
    "challenge",
    "check_scopes",
]
