"""RFC 8414 authorization-server metadata: where it lives, and whose it is.

The two rules, shared by the client and the guard: the document lives at the
issuer's host with ``/.well-known/oauth-authorization-server`` inserted before
the issuer's path (§3.1), and the ``issuer`` in it must be identical to the
configured one (§3.3), not just similar: otherwise an attacker-controlled
document could redirect tokens, or the guard's trust, elsewhere.

Many providers (Google, Entra, Cognito) publish only OpenID Connect's
document, which lives *after* the issuer's path (OIDC Discovery 1.0 §4.1; RFC
8414 §5 keeps that placement for it). `metadata_urls` lists both, RFC 8414's
first: the second is asked only when the first is absent (`is_absent`: a 4xx
other than 429), never when it is present but wrong, and the same issuer
check applies to either document.
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
from keyturn.core.jose import JoseFailure, VerificationKey, import_jwks

__all__ = [
    "OPENID_WELL_KNOWN",
    "WELL_KNOWN",
    "ServerMetadata",
    "is_absent",
    "jwks_request",
    "metadata_request",
    "metadata_requests",
    "metadata_url",
    "metadata_urls",
    "openid_configuration_url",
    "process_jwks_response",
    "process_metadata_response",
    "same_issuer",
]

WELL_KNOWN = "/.well-known/oauth-authorization-server"
OPENID_WELL_KNOWN = "/.well-known/openid-configuration"


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


def openid_configuration_url(issuer: str) -> str:
    """OIDC Discovery §4.1: the issuer, less a terminating ``/``, plus the well-known path.

    ``https://idp.example/tenant/a`` has it at
    ``https://idp.example/tenant/a/.well-known/openid-configuration``.
    """
    scheme, host, path, _, _ = urlsplit(issuer)
    return urlunsplit((scheme, host, path.rstrip("/") + OPENID_WELL_KNOWN, "", ""))


def metadata_urls(issuer: str) -> tuple[str, str]:
    """Where to look, in order: RFC 8414's document, then OpenID Connect's."""
    return metadata_url(issuer), openid_configuration_url(issuer)


def is_absent(response: HttpResponse) -> bool:
    """The document is not there (a 4xx but 429): worth asking for the next one."""
    return 400 <= response.status_code < 500 and response.status_code != 429


def same_issuer(published: object, configured: str) -> bool:
    """RFC 8414 §3.3: the document's ``issuer`` is identical to the configured one.

    Character for character: no trailing-slash, case or default-port leniency.
    """
    return isinstance(published, str) and published == configured


def metadata_request(issuer: str, timeout: float | None = None) -> HttpRequest:
    return metadata_requests(issuer, timeout)[0]


def metadata_requests(issuer: str, timeout: float | None = None) -> list[HttpRequest]:
    """One request per place in `metadata_urls`, to be tried in order."""
    headers = {"Accept": "application/json"}
    return [HttpRequest("GET", url, headers, b"", timeout) for url in metadata_urls(issuer)]


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


def jwks_request(jwks_uri: str, timeout: float | None = None) -> HttpRequest:
    return HttpRequest("GET", jwks_uri, {"Accept": "application/json"}, b"", timeout)


def process_jwks_response(response: HttpResponse) -> dict[str, VerificationKey]:
    """The provider's signature keys by ``kid`` (RFC 7517), public parts only."""
    raise_for_error_response(response, "JWKS endpoint")
    try:
        keys = import_jwks(json.loads(response.body))
    except (ValueError, UnicodeDecodeError, JoseFailure) as exc:
        raise InvalidResponseError(
            f"the JWKS is unusable: {exc}", status_code=response.status_code
        ) from None
    if not keys:
        raise InvalidResponseError("the JWKS holds no usable signature key")
    return keys
