"""How long a name, scope or URI may be, and how many of them one record may hold.

One table for every front end: the admin API's models declare these bounds
(so its OpenAPI document shows them), and `check_client` applies the same ones
to a client built anywhere else (the CLI, services). Each bound is generous
for real use and keeps a single row, a token's claims and a log line small.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from keyturn.storage.records import Client

CLIENT_ID = 128
SUBJECT = 255
NAME = 200
TOKEN_ID = 128
TOKEN_VALUE = 8192
REFRESH_TOKEN = 512

SCOPE = 128
"""One scope token (RFC 6749 §3.3: printable ASCII except space, ``"`` and ``\\``)."""
SCOPES = 100
AUDIENCE = 512
AUDIENCES = 20
REDIRECT_URI = 2048
REDIRECT_URIS = 20
GRANT_TYPE = 64
GRANT_TYPES = 10
AUTH_METHOD = 64
AUTH_METHODS = 3
IMPORT_BATCH = 1000
"""Tokens one ``/tokens/import`` call (or one CLI import batch) may carry."""

SCOPE_PATTERN = r"^[\x21\x23-\x5B\x5D-\x7E]+$"
_SCOPE = re.compile(SCOPE_PATTERN)


def _bounded(what: str, values: Iterable[str], count: int, length: int) -> None:
    items = list(values)
    if len(items) > count:
        raise ValueError(f"at most {count} {what} are allowed, not {len(items)}")
    for item in items:
        if not 0 < len(item) <= length:
            raise ValueError(f"each of the {what} must be 1 to {length} characters long")


def check_client(client: Client) -> None:
    """Raise `ValueError` if a client exceeds a bound of this module."""
    if not 0 < len(client.client_id) <= CLIENT_ID:
        raise ValueError(f"the client id must be 1 to {CLIENT_ID} characters long")
    if len(client.name) > NAME:
        raise ValueError(f"the client name must be at most {NAME} characters long")
    _bounded("scopes", client.scopes, SCOPES, SCOPE)
    bad = [s for s in client.scopes if not _SCOPE.match(s)]
    if bad:
        raise ValueError(f"the scope {bad[0]!r} has characters RFC 6749 §3.3 forbids")
    _bounded("audiences", client.audiences, AUDIENCES, AUDIENCE)
    _bounded("redirect URIs", client.redirect_uris, REDIRECT_URIS, REDIRECT_URI)
    _bounded("grant types", client.grant_types, GRANT_TYPES, GRANT_TYPE)
    _bounded("auth methods", client.auth_methods, AUTH_METHODS, AUTH_METHOD)
