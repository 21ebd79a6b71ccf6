"""The admin API's door: the admin token first, then a bounded, timed body.

FastAPI reads and parses a body before any dependency runs, so a check of the
token in a dependency comes too late: an anonymous 100 MiB POST was buffered
whole. This ASGI middleware runs before routing and answers, without reading
a byte of the body:

1. a declared ``Content-Length`` over ``KEYTURN_MAX_ADMIN_BODY_BYTES``: 413;
2. no live access token with the ``keyturn:admin`` scope: the RFC 6750 401,
   400 or 403 (`keyturn.server.bearer`);

then it reads the body itself, refusing it (413) once more bytes arrive than
the limit allows (chunked bodies declare no length), and 408 when it takes
longer than ``KEYTURN_BODY_TIMEOUT`` (408 Request Timeout says exactly that,
where a 400 would blame the content). A JSON body must be text UTF-8 and
PostgreSQL can hold: a lone surrogate or NUL anywhere is a 400 before
FastAPI sees it. The app then receives the buffered body. Every refusal
closes the connection, which may still carry an unread body.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyturn.core.errors import InvalidRequestError
from keyturn.server.admin.auth import ADMIN_SCOPE, ADMIN_TOKEN_KEY, REALM
from keyturn.server.bearer import bearer_token_record
from keyturn.server.context import get_context
from keyturn.server.request_body import (
    CLOSE,
    JSON,
    RequestTimeoutError,
    declared_length,
    is_storable,
    media_type,
    receive_body,
)

OPEN_PATHS = frozenset({"/openapi.json"})
"""Served without a token: the API's public description."""


class AdminGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _route_path(scope) in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            body = await self._admit(request, receive)
        except ClientDisconnect:  # gone while sending the body: nobody to answer
            return
        except Exception as exc:  # answered by the admin app's own handler for it
            await _answer(request, exc, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _admit(self, request: Request, receive: Receive) -> bytes:
        ctx = get_context(request)
        limit = ctx.settings.max_admin_body_bytes
        declared_length(request, limit)
        request.scope[ADMIN_TOKEN_KEY] = await bearer_token_record(
            ctx, request, realm=REALM, scope=ADMIN_SCOPE
        )
        timeout = ctx.settings.body_timeout
        with anyio.move_on_after(timeout) as waited:
            body = await receive_body(receive, limit)
        if waited.cancelled_caught:
            raise RequestTimeoutError(
                f"the body did not arrive within {timeout:g} seconds", headers=CLOSE
            )
        if body and media_type(request) == JSON:
            _check_json(body)
        return body


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _check_json(body: bytes) -> None:
    """Refuse what would parse but not store; leave malformed JSON to FastAPI's 400."""
    try:
        document = json.loads(body)
    except RecursionError:
        raise InvalidRequestError("the JSON body is nested too deeply") from None
    except ValueError:
        return
    if _has_unstorable(document):
        raise InvalidRequestError("strings must be valid Unicode text without NUL characters")


def _has_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return not is_storable(value)
    if isinstance(value, dict):
        return any(not is_storable(k) or _has_unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable(v) for v in value)
    return False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _answer(
    request: Request, exc: Exception, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer ``exc`` as the admin app would (its handlers, e.g. 503 for a database fault);
    anything else is a bug, for the server-error middleware to log."""
    handlers: dict[Any, Any] = scope["app"].exception_handlers
    kinds = (c for c in type(exc).__mro__ if c in handlers and c not in (Exception, BaseException))
    kind = next(kinds, None)
    if kind is None:
        raise exc
    response: Response = await handlers[kind](request, exc)
    response.headers.update(CLOSE)
    await response(scope, receive, send)
