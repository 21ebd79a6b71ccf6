"""One exception handler per kind of failure, so no endpoint formats an error itself.

`OAuthError` becomes its RFC 6749 §5.2 body with its status; Starlette's HTTP
errors (404, 405) keep their status with an OAuth-shaped body; anything else is
a bug: logged with its private detail and answered as a bare ``server_error``.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from keyturn.core.errors import OAuthError, ServerError
from keyturn.server.responses import json_response

log = logging.getLogger("keyturn.server")


async def oauth_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    if exc.detail:
        log.info("%s %s -> %s (%s)", request.method, request.url.path, exc.error, exc.detail)
    return json_response(exc.to_dict(), exc.status_code, exc.headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "invalid_request" if exc.status_code < 500 else "server_error"
    headers = dict(exc.headers or {})
    return json_response(
        {"error": code, "error_description": str(exc.detail)}, exc.status_code, headers
    )


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    error = ServerError("the server met an unexpected condition; it has been logged")
    return json_response(error.to_dict(), 500)


EXCEPTION_HANDLERS = {
    OAuthError: oauth_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}
