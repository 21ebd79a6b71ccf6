"""The Keyturn client SDK: give credentials once, every request carries a valid token.

Every error the SDK may raise is importable from here (one class per RFC 6749
code, `InvalidResponseError`, `TransportError`, ...: all of
`keyturn.core.errors`); the admin API's own errors are in `keyturn.client.api`.

>>> auth = OAuth2Auth(ClientCredentials(client_id="...", client_secret="...", token_url="..."))
>>> client = httpx2.Client(auth=auth)
"""

from keyturn.client.auth import OAuth2Auth
from keyturn.client.manager import AuthManager, TokenManager, TokenProvider, TokenUpdateHook
from keyturn.client.stores.base import AsyncTokenStore, TokenStore
from keyturn.client.stores.memory import MemoryTokenStore
from keyturn.core import errors as _errors
from keyturn.core.authorization import StateMismatchError
from keyturn.core.clock import Clock, SystemClock
from keyturn.core.credentials import (
    AuthorizationCodeCredentials,
    ClientAuthMethod,
    ClientCredentials,
    Credentials,
    PasswordCredentials,
)
from keyturn.core.errors import *  # noqa: F403 - every RFC error class, listed once, in core
from keyturn.core.events import EventKind, TokenEvent, TokenMetrics
from keyturn.core.id_token import IdTokenError, UnknownSigningKey
from keyturn.core.manager import AuthorizationRequiredError
from keyturn.core.revoke import (
    RevocationError,
    RevocationResult,
    RevocationStatus,
    TokenRevocation,
)
from keyturn.core.token import OAuthToken

__all__ = [
    "AsyncTokenStore",
    "AuthManager",
    "AuthorizationCodeCredentials",
    "AuthorizationRequiredError",
    "ClientAuthMethod",
    "ClientCredentials",
    "Clock",
    "Credentials",
    "EventKind",
    "IdTokenError",
    "MemoryTokenStore",
    "OAuth2Auth",
    "OAuthToken",
    "PasswordCredentials",
    "RevocationError",
    "RevocationResult",
    "RevocationStatus",
    "StateMismatchError",
    "SystemClock",
    "TokenEvent",
    "TokenManager",
    "TokenMetrics",
    "TokenProvider",
    "TokenRevocation",
    "TokenStore",
    "TokenUpdateHook",
    "UnknownSigningKey",
]
__all__ += _errors.__all__
