"""Where a Keyturn server answers: the path of each endpoint, written once.

The server routes and advertises these paths; the admin SDK, the fake server
and the live test server build their URLs from them through `KeyturnUrls`, so
an endpoint that moves, moves everywhere at once.
"""

from __future__ import annotations

__all__ = [
    "ADMIN_PATH",
    "AUTHORIZE_PATH",
    "INTROSPECTION_PATH",
    "JWKS_PATH",
    "LOGIN_PATH",
    "PUBLIC_KEY_PATH",
    "REVOCATION_PATH",
    "TOKEN_PATH",
    "USERINFO_PATH",
    "KeyturnUrls",
]

TOKEN_PATH = "/oauth/token"
AUTHORIZE_PATH = "/oauth/authorize"
LOGIN_PATH = "/oauth/login"
REVOCATION_PATH = "/oauth/revoke"
INTROSPECTION_PATH = "/oauth/introspect"
USERINFO_PATH = "/oauth/userinfo"
JWKS_PATH = "/.well-known/jwks.json"
PUBLIC_KEY_PATH = "/oauth/public-key.pem"
ADMIN_PATH = "/admin/v1"


class _Url:
    """A read-only attribute: the instance's ``base_url`` plus one path."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __get__(self, obj: KeyturnUrls, owner: object = None) -> str:
        return obj.base_url + self.path


class KeyturnUrls:
    """The absolute URLs of a Keyturn server's endpoints, for a class that has ``base_url``
    (its scheme and host, and any path prefix, without a trailing ``/``)."""

    __slots__ = ()
    base_url: str

    token_url = _Url(TOKEN_PATH)
    authorization_url = _Url(AUTHORIZE_PATH)
    revocation_url = _Url(REVOCATION_PATH)
    introspection_url = _Url(INTROSPECTION_PATH)
    jwks_url = _Url(JWKS_PATH)
