"""Every request's id, and its one access-log line.

An ASGI wrapper in the app's ``outer`` list (`app.KeyturnApp`), so it sees every
request, the token fast path included. The id is the client's (or the load
balancer's) ``X-Request-ID`` when that is sane -- 1 to 128 visible ASCII
characters, so it can go into a log line and a header as it is -- or else a
new random one. It is kept in `REQUEST_ID`, which the log formatters read
(`logging_config`), and echoed in the response's ``X-Request-ID`` so a client
can quote it.

The access line is written here rather than by uvicorn, whose line has no
duration and prints the query string (authorization requests carry ``state``,
``code_challenge`` and ``login_hint`` there). It goes to the ``keyturn.access``
logger, which ``serve --access-log`` enables.

The same wrapper tells ``finished`` (the latency metric, `metrics.request_timer`)
each request's status and duration: one wrapper and one ``send`` hook for all
three, since each layer of ASGI wrapping costs every request a coroutine frame
and a call per message. (Folding the metric's wrapper in here, with the JSON
answers' ready-made headers, took 7-10 % off an introspection's instructions;
valgrind, in-process.)
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID: ContextVar[str | None] = ContextVar("keyturn_request_id", default=None)
"""The id of the request being served in this task, or None outside a request."""

HEADER = b"x-request-id"
_SANE = re.compile(rb"[\x21-\x7e]{1,128}")

access_log = logging.getLogger("keyturn.access")

Finished = Callable[[Scope, int, float], None]
"""Told of each HTTP request once its answer is done: scope, status (0 when no
answer began: the client went away, or a crash) and seconds since it arrived."""


def sane_request_id(value: bytes) -> str | None:
    """``value`` as a request id if it is 1-128 visible ASCII characters, else None."""
    return value.decode("ascii") if _SANE.fullmatch(value) else None


def new_request_id() -> str:
    """128 random bits as 32 hex digits.

    A request id is a label for logs, not a secret (a client may choose its
    own), so it comes from `random`, not `secrets`, whose system call on every
    request was 2 % of an introspection's samples under load. `random` reseeds
    itself in a forked child, so two workers do not repeat each other's ids.
    """
    return random.getrandbits(128).to_bytes(16, "big").hex()  # 0.4 us; the f-string 0.8


def request_ids(app: ASGIApp, finished: Finished | None = None) -> ASGIApp:
    """Wrap ``app``: assign each HTTP request its id, echo it, log its access line,
    and tell ``finished`` how it ended."""

    async def with_request_id(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == HEADER:
                request_id = sane_request_id(value)
                break
        request_id = request_id or new_request_id()
        # Not reset afterwards: each request runs in a task (and context) of its own,
        # and uvicorn's line about an exception the app raised comes after we return.
        REQUEST_ID.set(request_id)
        echoed = (HEADER, request_id.encode("ascii"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            if finished is not None:
                finished(scope, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                log_access(scope, status or 500, seconds)

    return with_request_id


def log_access(scope: Scope, status: int, seconds: float) -> None:
    """One line per request: never the query string, which may carry codes or hints."""
    # The raw path is still percent-encoded: no control character reaches a text log.
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    path = path.partition("?")[0]
    client = scope.get("client")
    address = f"{client[0]}:{client[1]}" if client else "-"
    fields: dict[str, Any] = {
        "method": scope["method"],
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "client": address,
    }
    access_log.info(
        '%s "%s %s" %d %.1f ms',
        address,
        scope["method"],
        path,
        status,
        seconds * 1000,
        extra={"access": fields},
    )
