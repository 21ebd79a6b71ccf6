"""Plain data for one HTTP exchange, so the protocol core never imports an HTTP library.

The client shells convert these to and from httpx2, httpx or requests objects.
Response header names are lower-cased once, on construction.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

__all__ = ["HttpRequest", "HttpResponse", "basic_authorization"]


def basic_authorization(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` value for HTTP Basic client authentication.

    RFC 6749 §2.3.1: id and secret are each form-url-encoded before they are
    joined and base64-encoded, so a ``:`` or ``%`` in either survives (the
    Keyturn server decodes them that way).
    """
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request the core wants sent; ``body`` is already encoded."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    timeout: float | None = None

    def __repr__(self) -> str:
        # Headers and body carry client secrets and refresh tokens: never shown.
        return f"HttpRequest({self.method} {self.url})"


@dataclass(frozen=True, slots=True, init=False)
class HttpResponse:
    """A response as the core sees it: status, lower-cased headers, whole body."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes

    def __init__(self, status_code: int, headers: Mapping[str, str], body: bytes) -> None:
        object.__setattr__(self, "status_code", status_code)
        object.__setattr__(self, "headers", {k.lower(): v for k, v in headers.items()})
        object.__setattr__(self, "body", body)

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased (``""`` when absent)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def __repr__(self) -> str:
        return f"HttpResponse({self.status_code}, {self.content_type or 'no content-type'})"
