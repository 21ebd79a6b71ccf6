"""One exception handler per kind of failure, so no endpoint formats an error itself.

`OAuthError` becomes its RFC 6749 §5.2 body with its status; Starlette's HTTP
errors (404, 405) keep their status with an OAuth-shaped body; a fault of the
database (unreachable, disk full, pool exhausted) is ``503`` with
``Retry-After``, logged once per outage by the storage's health, not once per
request; anything else is a bug: logged with its private detail and answered
as a bare ``server_error``.

Faults are matched by exception class in Starlette's exception middleware
(`fault_classes`), because its last-resort handler for ``Exception`` always
re-raises, which makes the ASGI server log a traceback per request.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from keyturn.core.errors import OAuthError, ServerError, TemporarilyUnavailableError
from keyturn.server.responses import json_response
from keyturn.storage.health import database_fault

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


def fault_response(request: Request, exc: BaseException) -> Response | None:
    """The ``503`` for a database fault, or None when ``exc`` is not one."""
    kind = database_fault(exc)
    if kind is None:
        return None
    ctx = getattr(request.app.state, "keyturn", None)
    retry_after = 2
    if ctx is not None:
        ctx.storage.health.failed(exc, kind)
        retry_after = ctx.storage.health.retry_after
    what = "full" if kind == "full" else "unavailable"
    error = TemporarilyUnavailableError(
        f"the token database is {what} right now; retry after {retry_after} s"
    )
    return json_response(error.to_dict(), 503, {"Retry-After": str(retry_after)})


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    fault = fault_response(request, exc)
    if fault is not None:
        return fault
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    error = ServerError("the server met an unexpected condition; it has been logged")
    return json_response(error.to_dict(), 500)


async def fault_handler(request: Request, exc: Exception) -> Response:
    """A database fault's ``503``; any other exception of these classes is a bug."""
    fault = fault_response(request, exc)
    if fault is None:
        raise exc
    return fault


BASE_FAULT_CLASSES: tuple[type[Exception], ...] = (SQLAlchemyError, sqlite3.Error, OSError)
"""Where database faults come from: SQLAlchemy, the SQLite driver (the token
writer and reader), sockets."""


def fault_classes(postgres: bool) -> tuple[type[Exception], ...]:
    """The fault classes, with asyncpg's own on PostgreSQL only: importing asyncpg
    costs 30-130 ms of a start that SQLite never needs."""
    if not postgres:
        return BASE_FAULT_CLASSES
    import asyncpg  # type: ignore[import-untyped]

    return (*BASE_FAULT_CLASSES, asyncpg.PostgresError, asyncpg.InterfaceError)


def log_disconnect(request: Request) -> None:
    """The client went away (or its body timed out) mid-request: one info line, since
    it is not a bug to log with a traceback."""
    log.info(
        "%s %s: the client went away before its body arrived", request.method, request.url.path
    )


async def disconnect_handler(request: Request, exc: Exception) -> Response:
    """`log_disconnect`, and an answer nobody reads."""
    log_disconnect(request)
    return Response(status_code=400)


def exception_handlers(
    postgres: bool,
) -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """The app's handlers, by exception class (see the module docstring)."""
    return {
        ClientDisconnect: disconnect_handler,
        OAuthError: oauth_error_handler,
        HTTPException: http_error_handler,
        **dict.fromkeys(fault_classes(postgres), fault_handler),
        Exception: unexpected_error_handler,
    }


Endpoint = Callable[[Request], Awaitable[Response]]


def bare_app(endpoint: Endpoint, count_error: Callable[[str], None] | None = None) -> ASGIApp:
    """``endpoint`` as a bare ASGI app, for the app's fast path (see ``app.py``).

    It does what Starlette's route wrapper and exception middleware would, for
    one endpoint: an `OAuthError` becomes its RFC 6749 answer, a database fault
    its 503, anything else a logged ``server_error``, and a client that went
    away is one info line. ``count_error`` is told each error's RFC 6749 code.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except OAuthError as exc:
            if count_error is not None:
                count_error(exc.error)
            response = await oauth_error_handler(request, exc)
        except ClientDisconnect:
            log_disconnect(request)  # nobody is left to read an answer
            return
        except Exception as exc:
            response = await unexpected_error_handler(request, exc)
            if count_error is not None:
                count_error(ERROR_OF_STATUS.get(response.status_code, "server_error"))
        await response(scope, receive, send)

    return app


ERROR_OF_STATUS = {503: "temporarily_unavailable", 500: "server_error"}
"""The RFC 6749 code `unexpected_error_handler` answers with, by its status."""
