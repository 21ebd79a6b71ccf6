"""Refuse NUL characters in the path and query string of every request.

No identifier, token or parameter of Keyturn contains NUL, and PostgreSQL
cannot store one in text: rejecting it at the door keeps a malformed URL a
400, never a database error. (Bodies are checked where they are parsed.)
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from keyturn.core.errors import InvalidRequestError
from keyturn.server.responses import json_response


def has_nul(scope: Scope) -> bool:
    raw_path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    return b"%00" in raw_path or b"\x00" in raw_path or b"%00" in query or b"\x00" in query


class RejectNulMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and has_nul(scope):
            error = InvalidRequestError("the URL must not contain NUL characters")
            await json_response(error.to_dict(), 400)(scope, receive, send)
            return
        await self.app(scope, receive, send)
