"""Graceful shutdown behind a load balancer: drain first, then stop.

uvicorn already shuts down gracefully on SIGTERM: it stops accepting, closes
idle keep-alive connections, lets in-flight requests finish (within
``KEYTURN_SHUTDOWN_TIMEOUT``), then runs the app's lifespan shutdown, which
stops the signing helpers, the background tasks and the database pool.

What it cannot know is that a balancer still sends new connections to the port
until its health checks notice. ``KEYTURN_SHUTDOWN_DRAIN`` closes that gap: on
SIGTERM the process first *drains*, going on serving while ``/readyz`` answers
503, for that many seconds; only then does uvicorn's own shutdown begin. By
then the balancer has taken the process out, so closing the port refuses no
one. A second SIGTERM, or SIGINT (Ctrl-C), stops at once.

The drain wraps whatever SIGTERM handler the server installed (uvicorn's, in
each worker process), so it works with ``--workers N`` too. `answer_draining`
is the ASGI middleware that makes ``/readyz`` say so while the readiness
checks themselves (endpoints/health.py) stay about dependencies. It sits in
Starlette's stack, which the fast paths (``POST`` to the token endpoints)
skip, so they do not pay for it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("keyturn.server")

_draining = threading.Event()


def is_draining() -> bool:
    """True once this process received SIGTERM and is draining (``/readyz`` says 503)."""
    return _draining.is_set()


def start_draining() -> None:
    _draining.set()


READY_PATH = "/readyz"
DRAINING_BODY = orjson.dumps({"status": "draining", "checks": {"shutdown": "draining"}})
DRAINING_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(DRAINING_BODY)).encode()),
    (b"cache-control", b"no-store"),
    (b"retry-after", b"1"),
]


def answer_draining(app: ASGIApp) -> ASGIApp:
    """While draining, ``GET /readyz`` answers 503 ``draining``; all else is served."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if _draining.is_set() and scope["type"] == "http" and scope["path"] == READY_PATH:
            await send({"type": "http.response.start", "status": 503, "headers": DRAINING_HEADERS})
            await send({"type": "http.response.body", "body": DRAINING_BODY})
            return
        await app(scope, receive, send)

    return wrapped


def drain_on_sigterm(seconds: float) -> bool:
    """Delay the server's SIGTERM handling by ``seconds``, draining meanwhile.

    Call from the running event loop, after the server installed its handlers
    (the app's lifespan startup). Returns whether the drain is installed: not
    for 0 seconds, off the main thread (a test client) or without a handler.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        return False
    server_handler = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler):
        return False
    loop = asyncio.get_running_loop()

    def stop(sig: int) -> None:
        log.info("drained for %g s; shutting down", seconds)
        signal.signal(signal.SIGTERM, server_handler)
        server_handler(sig, None)

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if is_draining():  # a second SIGTERM: stop now
            stop(sig)
            return
        start_draining()
        # A signal handler may interrupt the loop anywhere: only the thread-safe call.
        loop.call_soon_threadsafe(_after, loop, seconds, stop, sig)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True


def _after(
    loop: asyncio.AbstractEventLoop, seconds: float, stop: Callable[[int], None], sig: int
) -> None:
    log.info("SIGTERM: draining for %g s (/readyz answers 503) before shutting down", seconds)
    loop.call_later(seconds, stop, sig)
