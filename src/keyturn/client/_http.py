"""The one place the SDK imports httpx2: conversions between it and the core's data.

The plain-httpx adapter reuses these functions with the ``httpx`` module passed
in, since both libraries share one API.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import httpx2

from keyturn.core.errors import TransportError
from keyturn.core.http import HttpRequest, HttpResponse

__all__ = [
    "from_response",
    "httpx2",
    "is_replayable",
    "send_async",
    "send_sync",
    "to_request",
    "transport_error",
]


def to_request(request: HttpRequest, lib: ModuleType = httpx2) -> Any:
    extensions = {}
    if request.timeout is not None:
        extensions["timeout"] = lib.Timeout(request.timeout).as_dict()
    return lib.Request(
        request.method,
        request.url,
        headers=dict(request.headers),
        content=request.body or None,
        extensions=extensions,
    )


def from_response(response: Any) -> HttpResponse:
    return HttpResponse(response.status_code, dict(response.headers), response.content)


def is_replayable(request: Any, lib: ModuleType = httpx2) -> bool:
    """A body already in memory can be sent twice; a stream cannot."""
    try:
        request.content  # noqa: B018 - raises when the body is a stream not yet read
    except lib.RequestNotRead:
        return False
    return True


def transport_error(exc: BaseException, request: HttpRequest) -> TransportError:
    """A typed error naming the endpoint and the failure kind; no headers, no body."""
    url = request.url.split("?", 1)[0]
    err = TransportError(f"{request.method} {url} failed: {type(exc).__name__}")
    err.__cause__ = exc
    return err


def send_sync(
    client: httpx2.Client, request: HttpRequest, *, auth: Any = httpx2.USE_CLIENT_DEFAULT
) -> HttpResponse:
    """Send and read the whole body; ``auth`` as in ``httpx2.Client.send`` (None: none)."""
    try:
        response = client.send(to_request(request), auth=auth)
        response.read()
    except httpx2.TransportError as exc:
        raise transport_error(exc, request) from exc
    return from_response(response)


async def send_async(
    client: httpx2.AsyncClient, request: HttpRequest, *, auth: Any = httpx2.USE_CLIENT_DEFAULT
) -> HttpResponse:
    try:
        response = await client.send(to_request(request), auth=auth)
        await response.aread()
    except httpx2.TransportError as exc:
        raise transport_error(exc, request) from exc
    return from_response(response)
