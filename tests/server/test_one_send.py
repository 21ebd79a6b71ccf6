"""A response's head and body leave in one socket write (`http_protocol.OneSend`).

Driven through the real protocol (uvicorn's httptools parser under
`KeyturnHttpProtocol`) on a transport that records each write, so a test can
tell one send from two; the bytes a client gets must not change at all.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from keyturn.server.http_protocol import ConnectionLimits, KeyturnHttpProtocol, OneSend

LIMITS = ConnectionLimits(
    header_timeout=5.0,
    body_timeout=5.0,
    keepalive_timeout=5.0,
    max_header_bytes=8192,
    max_connections=100,
)


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: Any) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    @property
    def received(self) -> bytes:
        return b"".join(self.writes)


async def plain(scope: Any, receive: Any, send: Any) -> None:
    """Answers the path, after reading the whole body (so ``Expect`` gets its 100)."""
    if scope["type"] != "http":
        return
    more = True
    body = b""
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = scope["path"].encode() + b":" + body
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})


async def streamed(scope: Any, receive: Any, send: Any) -> None:
    """A head, then three chunks with a pause (a loop turn or more) between them."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one", b"two", b"three"):
        await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def connect(app: Any) -> tuple[KeyturnHttpProtocol, RecordingTransport]:
    config = Config(app=app, lifespan="off", log_config=None)
    config.load()
    KeyturnHttpProtocol.limits = LIMITS
    protocol = KeyturnHttpProtocol(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def default_limits() -> Any:
    yield
    KeyturnHttpProtocol.limits = None


@pytest.mark.anyio
async def test_a_plain_answer_is_one_write() -> None:
    protocol, transport = await connect(plain)
    protocol.data_received(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    await settle()
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 5" in head
    assert body == b"/a:hi"
    protocol.connection_lost(None)


@pytest.mark.anyio
async def test_keep_alive_answers_come_whole_and_in_order() -> None:
    protocol, transport = await connect(plain)
    for path in (b"/1", b"/2", b"/3"):
        protocol.data_received(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        await settle()
    assert len(transport.writes) == 3
    assert [w.rpartition(b"\r\n\r\n")[2] for w in transport.writes] == [b"/1:", b"/2:", b"/3:"]
    protocol.connection_lost(None)


@pytest.mark.anyio
async def test_pipelined_requests_are_answered_in_order() -> None:
    protocol, transport = await connect(plain)
    protocol.data_received(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    await settle()
    bodies = [part for part in transport.received.split(b"HTTP/1.1 200 OK") if part]
    assert [b.rpartition(b"\r\n\r\n")[2] for b in bodies] == [b"/1:", b"/2:", b"/3:"]
    protocol.connection_lost(None)


@pytest.mark.anyio
async def test_a_head_answer_is_sent_without_a_body() -> None:
    protocol, transport = await connect(plain)
    protocol.data_received(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle()
    assert transport.received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.received.endswith(b"\r\n\r\n")  # the head only, not held back
    protocol.connection_lost(None)


@pytest.mark.anyio
async def test_a_streamed_answer_is_not_held_back() -> None:
    protocol, transport = await connect(streamed)
    protocol.data_received(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.005)  # the head is out before the first chunk exists
    assert transport.received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"one" not in transport.received
    await asyncio.sleep(0.1)
    assert transport.received.endswith(b"3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n")
    protocol.connection_lost(None)


@pytest.mark.anyio
async def test_100_continue_comes_before_the_answer() -> None:
    protocol, transport = await connect(plain)
    protocol.data_received(
        b"POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    await settle()
    assert transport.received == b"HTTP/1.1 100 Continue\r\n\r\n"
    protocol.data_received(b"body")
    await settle()
    assert transport.received.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert transport.received.endswith(b"\r\n\r\n/c:body")
    protocol.connection_lost(None)


@pytest.mark.anyio
async def test_a_bad_request_after_an_answer_keeps_the_order() -> None:
    """uvicorn writes its 400 straight to the socket: a held answer goes first."""
    protocol, transport = await connect(plain)
    protocol.data_received(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle()
    protocol.answers.write(b"held;")  # as if an answer were still held this turn
    protocol.data_received(b"\x00\x01 not http\r\n\r\n")
    assert transport.writes[1] == b"held;"
    assert transport.writes[2].startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert transport.closed


@pytest.mark.anyio
async def test_shutdown_sends_a_held_answer_before_closing() -> None:
    protocol, transport = await connect(plain)
    protocol.data_received(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle()
    protocol.answers.write(b"last")
    protocol.shutdown()
    assert transport.writes[-1] == b"last"
    assert transport.closed


@pytest.mark.anyio
async def test_one_send_holds_one_write_until_the_next_or_the_next_turn() -> None:
    transport = RecordingTransport()
    out = OneSend(transport, asyncio.get_running_loop())
    out.write(b"head;")
    assert transport.writes == []
    out.write(memoryview(b"body"))
    assert transport.writes == [b"head;body"]
    out.write(bytearray(b"alone"))
    await asyncio.sleep(0)
    assert transport.writes == [b"head;body", b"alone"]
    out.write(b"dropped")
    transport.close()  # the connection went away meanwhile
    await asyncio.sleep(0)
    assert transport.writes == [b"head;body", b"alone"]
    assert out.is_closing()
    assert out.get_extra_info("peername") == ("127.0.0.1", 50000)


@pytest.mark.anyio
async def test_one_send_close_flushes_first() -> None:
    transport = RecordingTransport()
    out = OneSend(transport, asyncio.get_running_loop())
    out.write(b"bye")
    out.close()
    assert transport.writes == [b"bye"]
    assert transport.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert transport.writes == [b"bye"]
