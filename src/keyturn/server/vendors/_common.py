"""What every vendor adapter needs: its own error shape around Keyturn's errors.

An adapter raises the same `OAuthError`s as the RFC endpoints; `answer` turns
each into the vendor's body (``render``), and a database fault into the same
``503`` + ``Retry-After`` the RFC endpoints give, in that vendor's shape too.
Anything else is a bug: logged with its traceback, answered as ``server_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from keyturn.core.errors import OAuthError, ServerError, TemporarilyUnavailableError
from keyturn.server.errors import fault_response

log = logging.getLogger("keyturn.server")

ErrorRenderer = Callable[[OAuthError], Response]


async def answer(
    request: Request, call: Callable[[], Awaitable[Response]], render: ErrorRenderer
) -> Response:
    """``call()``'s response, or its failure in the vendor's shape."""
    try:
        return await call()
    except OAuthError as exc:
        if exc.detail:
            log.info("%s %s -> %s (%s)", request.method, request.url.path, exc.error, exc.detail)
        return render(exc)
    except ClientDisconnect:
        raise
    except Exception as exc:
        fault = fault_response(request, exc)
        if fault is not None:
            body = orjson.loads(fault.body)
            retry = {"Retry-After": fault.headers["retry-after"]}
            return render(TemporarilyUnavailableError(body["error_description"], headers=retry))
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return render(ServerError("the server met an unexpected condition; it has been logged"))


def without_authorization(request: Request) -> Request:
    """The same request with its ``Authorization`` header dropped.

    For SDKs that send their current Bearer token on every call, the token
    request included, while the body carries the client's credentials.
    """
    scope = dict(request.scope)
    scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"authorization"]
    return Request(scope, request.receive)


def has_bearer(request: Request) -> bool:
    scheme = request.headers.get("authorization", "").split(" ", 1)[0]
    return scheme.lower() == "bearer"
