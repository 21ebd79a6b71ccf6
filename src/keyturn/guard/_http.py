"""The guard's one point of contact with httpx2, and the two drivers of its flows.

The guard's network steps (discovery, JWKS, introspection) are written once as
generators that yield a `keyturn.core.http.HttpRequest` and receive an
`HttpResponse`, the client SDK's currency too, the way httpx's own
``Auth.auth_flow`` works. `drive_sync` and `drive_async` (core's one driver
pair with an httpx2 ``send``) are the only code that touches a socket, so
sync and async verification share every line of logic. A transport failure
is thrown *into* the flow as `FetchError`, so the flow decides
what a failure means (for example: keep the stale JWKS).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx2

from keyturn.core import flows
from keyturn.core.http import HttpRequest, HttpResponse, basic_authorization

__all__ = [
    "AsyncClient",
    "Client",
    "FetchError",
    "Flow",
    "drive_async",
    "drive_sync",
    "get_request",
    "json_body",
    "new_async_client",
    "new_client",
    "post_form_request",
]

T = TypeVar("T")

Client = httpx2.Client
AsyncClient = httpx2.AsyncClient
Flow = Generator[HttpRequest, HttpResponse, T]

_TIMEOUT = httpx2.Timeout(5.0)


class FetchError(Exception):
    """A guard request failed: unreachable, timed out, non-2xx or not JSON."""


def new_client() -> httpx2.Client:
    """A client for guard requests: short timeout, no redirects (RFC 8414 §3 wants none)."""
    return httpx2.Client(timeout=_TIMEOUT, follow_redirects=False)


def new_async_client() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(timeout=_TIMEOUT, follow_redirects=False)


def get_request(url: str) -> HttpRequest:
    return HttpRequest("GET", url, {"Accept": "application/json"})


def post_form_request(
    url: str, data: dict[str, str], *, username: str, password: str
) -> HttpRequest:
    """A form POST with HTTP Basic client authentication (RFC 7662 §2.1, RFC 6749 §2.3.1)."""
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": basic_authorization(username, password),
    }
    return HttpRequest("POST", url, headers, urlencode(data).encode())


def json_body(response: HttpResponse, url: str) -> Any:
    """The JSON body of a 2xx answer from ``url``, else `FetchError`."""
    if not 200 <= response.status_code < 300:
        raise FetchError(f"{url} answered HTTP {response.status_code}")
    try:
        return json.loads(response.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FetchError(f"{url} answered a body that is not JSON") from exc


def drive_sync(flow: Flow[T], client: httpx2.Client) -> T:
    """Run a flow to completion with a blocking client."""

    def send(request: HttpRequest) -> HttpResponse:
        try:
            return _from_httpx(client.send(_to_httpx(request)))
        except httpx2.HTTPError as exc:
            raise _failure(request, exc) from exc

    return flows.drive(flow, send)


async def drive_async(flow: Flow[T], client: httpx2.AsyncClient) -> T:
    """Run a flow to completion with an async client."""

    async def send(request: HttpRequest) -> HttpResponse:
        try:
            return _from_httpx(await client.send(_to_httpx(request)))
        except httpx2.HTTPError as exc:
            raise _failure(request, exc) from exc

    return await flows.drive_async(flow, send)


def _to_httpx(request: HttpRequest) -> httpx2.Request:
    return httpx2.Request(
        request.method, request.url, headers=dict(request.headers), content=request.body
    )


def _from_httpx(response: httpx2.Response) -> HttpResponse:
    return HttpResponse(response.status_code, response.headers, response.content)


def _failure(request: HttpRequest, exc: Exception) -> FetchError:
    error = FetchError(f"{request.method} {request.url} failed: {type(exc).__name__}")
    error.__cause__ = exc
    return error
