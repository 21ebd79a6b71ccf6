"""RFC 8414 authorization-server metadata: the request and the checked answer.

The ``issuer`` in the document must equal the one asked for (§3.3), otherwise
an attacker-controlled document could redirect tokens elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from keyturn.core.errors import InvalidResponseError
from keyturn.core.grants import raise_for_error_response
from keyturn.core.http import HttpRequest, HttpResponse

__all__ = ["ServerMetadata", "metadata_request", "metadata_url", "process_metadata_response"]

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
    """RFC 8414 §3.1: the well-known suffix goes between host and issuer path."""
    scheme, rest = issuer.split("://", 1)
    host, _, path = rest.partition("/")
    path = path.rstrip("/")
    return f"{scheme}://{host}{WELL_KNOWN}" + (f"/{path}" if path else "")


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
    if data.get("issuer") != issuer.rstrip("/") and data.get("issuer") != issuer:
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
