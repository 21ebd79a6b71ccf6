"""uvicorn's HTTP protocol with deadlines for a request head and body, and a connection cap.

Why a subclass: uvicorn (0.54, ``httptools_impl``) arms a timer only *after* a
response, for an idle keep-alive connection, and cancels it on the first byte
that arrives. A connection that never sends a whole request head (silent, or
one byte every half second) has no timer at all, so 250 of them held their
descriptors for as long as their clients liked. Nor does httptools bound the
size of a head. ``limit_concurrency`` does not help: it answers 503 only once a
head has arrived, and counts the idle connections against real requests.
Moving to another ASGI server would change the server every benchmark
measured; a small subclass of the protocol uvicorn already runs keeps its
speed, its parser and its code paths, and the hooks it overrides are
uvicorn's own protocol callbacks.

What it adds, per connection (settings in `keyturn.server.settings`):

- ``KEYTURN_HEADER_TIMEOUT``: a whole request head must arrive within this many
  seconds of the connection opening (or of the previous response, when the
  keep-alive wait is over). The deadline is fixed when armed: trickling bytes
  does not extend it. Then the connection is closed, unanswered.
- ``KEYTURN_MAX_HEADER_BYTES``: a longer head is answered 431 and closed.
- ``KEYTURN_BODY_TIMEOUT``: once the head is in, the body must arrive within
  this many seconds. Then, if the app has not started its answer, the client
  gets an RFC 6749-style 408 and the connection is closed; the app sees a
  disconnect. (The admin API also checks this itself, in `admin.guard`.)
- ``KEYTURN_MAX_CONNECTIONS``: a connection over this many open ones in the
  process is answered 503 with ``Retry-After`` at once and closed, before
  anything is read, so idle sockets cannot hold more descriptors than this.
- ``KEYTURN_KEEPALIVE_TIMEOUT``: uvicorn's own idle keep-alive timer, set here
  (so every ``KEYTURN_*`` connection setting is read in one place).

Timers are the event loop's ``call_later`` handles, as uvicorn's own, so a
request costs two timer swaps and nothing in the app.

And one saving: uvicorn writes a response's head and its body with two socket
sends, which were 18 % of the event loop's samples in a profile of
introspection (py-spy, c=16). `OneSend` joins them into one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from keyturn.core.errors import InvalidRequestError
from keyturn.server.settings import Settings


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_header_bytes: int
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            keepalive_timeout=settings.keepalive_timeout,
            max_header_bytes=settings.max_header_bytes,
            max_connections=settings.max_connections,
        )


@lru_cache(maxsize=1)
def limits_from_environment() -> ConnectionLimits:
    """Read once per process (uvicorn's worker processes import this module afresh)."""
    return ConnectionLimits.of(Settings())


def _answer(status: str, error: InvalidRequestError, *extra: bytes) -> bytes:
    body = orjson.dumps(error.to_dict())
    head = [
        b"HTTP/1.1 " + status.encode(),
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"cache-control: no-store",
        b"connection: close",
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


BUSY = _answer(
    "503 Service Unavailable",
    InvalidRequestError("the server has too many open connections; retry shortly"),
    b"retry-after: 1",
)
HEAD_TOO_LARGE = _answer(
    "431 Request Header Fields Too Large",
    InvalidRequestError("the request line and headers are too large"),
)


class OneSend(asyncio.Transport):
    """A connection's transport for answers: a write is held until the next one,
    which goes out with it, or until the event loop's next turn.

    uvicorn writes the head when the app starts its answer and the body when it
    sends it, which a plain response does at once: both then leave in one send
    (one syscall, one segment for the client to wake up for). Nothing waits
    longer than the loop's turn, so a streamed answer, a head-only answer and
    ``100 Continue`` go out as before. The protocol flushes before anything
    else writes to the connection (uvicorn's own 400, say), so bytes keep their
    order.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._held = None
            self._transport.write(held + data)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class KeyturnHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the deadlines and the cap described above."""

    limits: ClassVar[ConnectionLimits | None] = None
    """Set to override the ``KEYTURN_*`` environment (tests, embedding)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bounds = self.limits or limits_from_environment()
        self.timeout_keep_alive = self.bounds.keepalive_timeout  # type: ignore[assignment]
        self._deadline: asyncio.TimerHandle | None = None
        self._awaiting_head = False
        self._head_bytes = 0

    # -- the connection ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self.answers = OneSend(self.transport, self.loop)
        if len(self.connections) > self.bounds.max_connections:
            self.transport.write(BUSY)
            self.transport.close()
            return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.answers.flush()  # a held answer leaves before anything uvicorn writes now
        if self._awaiting_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            self._awaiting_head
            and self._head_bytes > self.bounds.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._disarm()
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def shutdown(self) -> None:
        self.answers.flush()  # the last answer, if held, goes before uvicorn closes
        super().shutdown()

    def timeout_keep_alive_handler(self) -> None:
        self.answers.flush()
        super().timeout_keep_alive_handler()

    # -- parser callbacks ----------------------------------------------------------------
    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._arm(self.bounds.body_timeout, self._body_timed_out)
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not before:  # not for an upgrade, which makes no cycle
            self.cycle.transport = self.answers

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
        # The app answered before reading the whole body (a refusal, say): now the
        # connection waits for a new request.
        if self.cycle.response_complete and not self.pipeline and not self.transport.is_closing():
            self._await_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn armed its keep-alive timer: the connection waits for a new request,
        # unless the body of this one is still arriving (then its deadline still holds).
        if self.timeout_keep_alive_task is not None and not self.cycle.more_body:
            self._await_head()

    # -- deadlines -----------------------------------------------------------------------
    def _await_head(self) -> None:
        self._awaiting_head = True
        self._head_bytes = 0
        self._arm(self.bounds.header_timeout, self._head_timed_out)

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.answers.close()

    def _body_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            seconds = f"{self.bounds.body_timeout:g}"
            error = InvalidRequestError(f"the body did not arrive within {seconds} seconds")
            self.answers.write(_answer("408 Request Timeout", error))
            # The app's pending receive() now sees a disconnect; its answer is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.answers.close()
