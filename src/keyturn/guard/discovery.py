"""What the issuer publishes: RFC 8414 metadata and the RFC 7517 JWKS.

Request/process pairs (oauth4webapi style): each ``*_request`` builds the HTTP
request, each ``process_*`` validates the answer field by field and raises
`FetchError` for anything unusable. The I/O happens in `_http`'s drivers.

Where the metadata lives and whose it is are the client's rules too
(`keyturn.core.discovery`): RFC 8414 §3.1's URL, which for an issuer with a
path puts the well-known segment before that path, and an ``issuer`` identical
to the configured one (§3.3), so a metadata document cannot point the guard at
someone else's keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyturn.core.discovery import metadata_url, same_issuer
from keyturn.core.http import HttpRequest, HttpResponse
from keyturn.core.jose import JoseFailure, VerificationKey, import_jwks
from keyturn.guard._http import FetchError, get_request, json_body

__all__ = [
    "IssuerMetadata",
    "jwks_request",
    "metadata_request",
    "metadata_url",
    "process_jwks_response",
    "process_metadata_response",
]


@dataclass(frozen=True, slots=True)
class IssuerMetadata:
    """The parts of the authorization server's metadata the guard uses."""

    issuer: str
    jwks_uri: str
    introspection_endpoint: str | None = None


def metadata_request(url: str) -> HttpRequest:
    return get_request(url)


def process_metadata_response(response: HttpResponse, issuer: str) -> IssuerMetadata:
    body = json_body(response, metadata_url(issuer))
    if not isinstance(body, dict):
        raise FetchError("issuer metadata is not a JSON object")
    if not same_issuer(body.get("issuer"), issuer):
        raise FetchError(f"metadata issuer {body.get('issuer')!r} is not {issuer!r}")
    jwks_uri = body.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise FetchError("issuer metadata has no jwks_uri")
    introspection = body.get("introspection_endpoint")
    return IssuerMetadata(
        issuer=issuer,
        jwks_uri=jwks_uri,
        introspection_endpoint=introspection if isinstance(introspection, str) else None,
    )


def jwks_request(jwks_uri: str) -> HttpRequest:
    return get_request(jwks_uri)


def process_jwks_response(response: HttpResponse, jwks_uri: str) -> dict[str, VerificationKey]:
    try:
        keys = import_jwks(json_body(response, jwks_uri))
    except JoseFailure as exc:
        raise FetchError(f"unusable JWKS: {exc}") from exc
    if not keys:
        raise FetchError("JWKS holds no usable signature key")
    return keys
