"""The guard's one point of contact with httpx2, and the two drivers of its flows.

The guard's network steps (discovery, JWKS, introspection) are written once as
generators that yield an `httpx2.Request` and receive the `httpx2.Response`, the
way httpx's own ``Auth.auth_flow`` works. `drive_sync` and `drive_async` are the
only code that touches a socket, so sync and async verification share every
line of logic. A transport failure is thrown *into* the flow as `FetchError`, so
the flow decides what a failure means (for example: keep the stale JWKS).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

import httpx2

__all__ = [
    "AsyncClient",
    "Client",
    "FetchError",
    "Flow",
    "Request",
    "Response",
    "drive_async",
    "drive_sync",
    "get_request",
    "json_body",
    "new_async_client",
    "new_client",
    "post_form_request",
]

T = TypeVar("T")

Request = httpx2.Request
Response = httpx2.Response
Client = httpx2.Client
AsyncClient = httpx2.AsyncClient
Flow = Generator[httpx2.Request, httpx2.Response, T]

_TIMEOUT = httpx2.Timeout(5.0)


class FetchError(Exception):
    """A guard request failed: unreachable, timed out, non-2xx or not JSON."""


def new_client() -> httpx2.Client:
    """A client for guard requests: short timeout, no redirects (RFC 8414 §3 wants none)."""
    return httpx2.Client(timeout=_TIMEOUT, follow_redirects=False)


def new_async_client() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(timeout=_TIMEOUT, follow_redirects=False)


def get_request(url: str) -> httpx2.Request:
    return httpx2.Request("GET", url, headers={"Accept": "application/json"})


def post_form_request(
    url: str, data: dict[str, str], *, username: str, password: str
) -> httpx2.Request:
    """A form POST with HTTP Basic client authentication (RFC 7662 §2.1, RFC 6749 §2.3.1)."""
    request = httpx2.Request("POST", url, data=data, headers={"Accept": "application/json"})
    return next(httpx2.BasicAuth(username, password).auth_flow(request))


def json_body(response: httpx2.Response) -> Any:
    """The JSON body of a 2xx answer, else `FetchError`."""
    if not response.is_success:
        raise FetchError(f"{response.request.url} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise FetchError(f"{response.request.url} answered a body that is not JSON") from exc


def drive_sync(flow: Flow[T], client: httpx2.Client) -> T:
    """Run a flow to completion with a blocking client."""
    try:
        request = next(flow)
        while True:
            try:
                response = client.send(request)
            except httpx2.HTTPError as exc:
                request = flow.throw(_failure(request, exc))
            else:
                request = flow.send(response)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def drive_async(flow: Flow[T], client: httpx2.AsyncClient) -> T:
    """Run a flow to completion with an async client."""
    try:
        request = next(flow)
        while True:
            try:
                response = await client.send(request)
            except httpx2.HTTPError as exc:
                request = flow.throw(_failure(request, exc))
            else:
                request = flow.send(response)
    except StopIteration as stop:
        result: T = stop.value
        return result


def _failure(request: httpx2.Request, exc: Exception) -> FetchError:
    error = FetchError(f"{request.method} {request.url} failed: {type(exc).__name__}")
    error.__cause__ = exc
    return error
