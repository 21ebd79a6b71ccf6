"""Keyturn's own API: `KeyturnClient` and `AsyncKeyturnClient`, with the same methods.

>>> with KeyturnClient("https://auth.example", client_id="...", client_secret="...") as kt:
...     for token in kt.tokens.list(client_id="svc-1", active=True):
...         print(token.token_id, token.scopes)

Each operation is a sans-IO request/process pair (`keyturn.client.api.token_ops`,
`client_ops`, `oauth_ops`); the two clients only send. The asyncio client is
written by hand (``_async``); the blocking one (``_sync``) is generated from it
by ``scripts/unasync.py``.
"""

from keyturn.client.api._async.client import (
    AsyncClients,
    AsyncKeyturnClient,
    AsyncTokenPager,
    AsyncTokens,
)
from keyturn.client.api._sync.client import Clients, KeyturnClient, TokenPager, Tokens
from keyturn.client.api._wire import RequestOptions
from keyturn.client.api.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    TooManyRequestsError,
)
from keyturn.client.api.models import (
    Client,
    ClientSecretInfo,
    ClientWithSecret,
    ImportResult,
    Introspection,
    IssuedToken,
    LegacyToken,
    RevokeResult,
    Token,
    TokenPage,
)
from keyturn.client.api.oauth_ops import ClientAuth

__all__ = [
    "ApiError",
    "AsyncClients",
    "AsyncKeyturnClient",
    "AsyncTokenPager",
    "AsyncTokens",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ClientAuth",
    "ClientSecretInfo",
    "ClientWithSecret",
    "Clients",
    "ConflictError",
    "ImportResult",
    "InternalServerError",
    "Introspection",
    "IssuedToken",
    "KeyturnClient",
    "LegacyToken",
    "NotFoundError",
    "PermissionDeniedError",
    "RequestOptions",
    "RevokeResult",
    "Token",
    "TokenPage",
    "TokenPager",
    "Tokens",
    "TooManyRequestsError",
]
