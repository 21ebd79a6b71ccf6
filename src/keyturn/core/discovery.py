"""RFC 8414 authorization-server metadata: where it lives, and whose it is.

The two rules, shared by the client and the guard: the document lives at the
issuer's host with ``/.well-known/oauth-authorization-server`` inserted before
the issuer's path (§3.1), and the ``issuer`` in it must be identical to the
configured one (§3.3), not just similar: otherwise an attacker-controlled
document could redirect tokens, or the guard's trust, elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from keyturn.core.errors import InvalidResponseError
from keyturn.core.grants import raise_for_error_response
from keyturn.core.http import HttpRequest, HttpResponse

__all__ = [
    "WELL_KNOWN",
    "ServerMetadata",
    "metadata_request",
    "metadata_url",
    "process_metadata_response",
    "same_issuer",
]

WELL_KNOWN = "/.well-known/oauth-authorization-server"


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    issuer: str
    token_endpoint: str | None = None
    authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    jwks_uri: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw", MappingProxyType(dict(self.raw)))


def metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known suffix goes between host and issuer path.

    ``https://idp.example/tenant/a`` has its metadata at
    ``https://idp.example/.well-known/oauth-authorization-server/tenant/a``; a
    terminating ``/`` of the path is removed first.
    """
    scheme, host, path, _, _ = urlsplit(issuer)
    return urlunsplit((scheme, host, WELL_KNOWN + path.rstrip("/"), "", ""))


def same_issuer(published: object, configured: str) -> bool:
    """RFC 8414 §3.3: the document's ``issuer`` is identical to the configured one.

    Character for character: no trailing-slash, case or default-port leniency.
    """
    return isinstance(published, str) and published == configured


def metadata_request(issuer: str, timeout: float | None = None) -> HttpRequest:
    return HttpRequest("GET", metadata_url(issuer), {"Accept": "application/json"}, b"", timeout)


def process_metadata_response(response: HttpResponse, issuer: str) -> ServerMetadata:
    raise_for_error_response(response, "metadata endpoint")
    try:
        data = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise InvalidResponseError(
            "metadata endpoint did not answer a JSON object", status_code=response.status_code
        )
    if not same_issuer(data.get("issuer"), issuer):
        raise InvalidResponseError("metadata issuer does not match the configured issuer")
    endpoints: dict[str, str | None] = {}
    for name in (
        "token_endpoint",
        "authorization_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "jwks_uri",
    ):
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidResponseError(f"metadata field {name!r} must be a string")
        endpoints[name] = value
    return ServerMetadata(issuer=str(data["issuer"]), raw=data, **endpoints)
