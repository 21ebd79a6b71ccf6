"""Sans-IO OAuth 2.0 protocol core shared by the server, the SDK and the guard: token
model, grant requests and responses, PKCE, discovery, errors and the token-manager
state machine. No network, no framework.
"""

from keyturn.core.clock import Clock, SystemClock
from keyturn.core.credentials import (
    AuthorizationCodeCredentials,
    ClientAuthMethod,
    ClientCredentials,
    Credentials,
    PasswordCredentials,
)
from keyturn.core.grants import DEFAULT_LIFETIME
from keyturn.core.token import OAuthToken

__all__ = [
    "DEFAULT_LIFETIME",
    "AuthorizationCodeCredentials",
    "ClientAuthMethod",
    "ClientCredentials",
    "Clock",
    "Credentials",
    "OAuthToken",
    "PasswordCredentials",
    "SystemClock",
]
