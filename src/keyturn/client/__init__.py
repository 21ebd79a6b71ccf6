"""The Keyturn client SDK: give credentials once, every request carries a valid token.

>>> auth = OAuth2Auth(ClientCredentials(client_id="...", client_secret="...", token_url="..."))
>>> client = httpx2.Client(auth=auth)
"""

from keyturn.client.auth import OAuth2Auth
from keyturn.client.manager import AuthManager, TokenManager, TokenProvider, TokenUpdateHook
from keyturn.client.stores.base import AsyncTokenStore, TokenStore
from keyturn.client.stores.memory import MemoryTokenStore
from keyturn.core.authorization import StateMismatchError
from keyturn.core.clock import Clock, SystemClock
from keyturn.core.credentials import (
    AuthorizationCodeCredentials,
    ClientAuthMethod,
    ClientCredentials,
    Credentials,
    PasswordCredentials,
)
from keyturn.core.errors import (
    AccessDeniedError,
    InvalidResponseError,
    KeyturnError,
    OAuthError,
    RateLimitedError,
    TransportError,
)
from keyturn.core.events import EventKind, TokenEvent, TokenMetrics
from keyturn.core.manager import AuthorizationRequiredError
from keyturn.core.token import OAuthToken

__all__ = [
    "AccessDeniedError",
    "AsyncTokenStore",
    "AuthManager",
    "AuthorizationCodeCredentials",
    "AuthorizationRequiredError",
    "ClientAuthMethod",
    "ClientCredentials",
    "Clock",
    "Credentials",
    "EventKind",
    "InvalidResponseError",
    "KeyturnError",
    "MemoryTokenStore",
    "OAuth2Auth",
    "OAuthError",
    "OAuthToken",
    "PasswordCredentials",
    "RateLimitedError",
    "StateMismatchError",
    "SystemClock",
    "TokenEvent",
    "TokenManager",
    "TokenMetrics",
    "TokenProvider",
    "TokenStore",
    "TokenUpdateHook",
    "TransportError",
]
