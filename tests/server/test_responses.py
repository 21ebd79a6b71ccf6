"""The hot path's hand-laid answers and header reads equal what Starlette makes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Scope

from keyturn.server.request_headers import header
from keyturn.server.request_id import request_ids
from keyturn.server.responses import NO_STORE, JSONAnswer, json_response


@pytest.mark.parametrize(
    ("content", "status", "headers", "no_store"),
    [
        ({"active": True, "scope": "read"}, 200, None, True),
        ({"active": False}, 200, None, False),
        ({"error": "invalid_client"}, 401, {"WWW-Authenticate": 'Basic realm="k"'}, True),
        ({"error": "x"}, 503, {"Retry-After": "1", "Cache-Control": "max-age=0"}, True),
        ({}, 204, None, True),
        ({}, 304, None, False),
        ({"caf\u00e9": "\u2603"}, 400, None, True),
    ],
)
def test_json_answer_is_starlettes_response(
    content: Any, status: int, headers: dict[str, str] | None, no_store: bool
) -> None:
    merged = dict(NO_STORE) if no_store else {}
    merged.update(headers or {})
    expected = Response(
        orjson.dumps(content), status_code=status, headers=merged, media_type="application/json"
    )
    answer = json_response(content, status, headers, no_store=no_store)
    assert isinstance(answer, JSONAnswer)
    assert answer.raw_headers == expected.raw_headers
    assert (answer.body, answer.status_code) == (expected.body, expected.status_code)
    assert answer.headers["content-type"] == "application/json"
    assert answer.background is None


def _request(raw: list[tuple[bytes, bytes]]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw})


@pytest.mark.parametrize(
    "raw",
    [
        [],
        [(b"authorization", b"Basic abc")],
        [(b"content-type", b"a"), (b"content-type", b"b")],  # the first, as Starlette
        [(b"content-length", b"12"), (b"x-caf", "caf\u00e9".encode("latin-1"))],
        [(b"x-utf8", "\u00e9".encode())],  # bytes that are not latin-1 text as sent
    ],
)
def test_header_reads_as_starlette_does(raw: list[tuple[bytes, bytes]]) -> None:
    request = _request(raw)
    for name in ("authorization", "content-type", "content-length", "x-caf", "x-utf8", "nope"):
        assert header(request, name.encode()) == Headers(raw=raw).get(name), name


def _run(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _scope(path: str) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": [(b"x-request-id", b"r1")]}


def test_finished_is_told_the_status_and_the_time() -> None:
    told: list[tuple[str, int, float]] = []

    async def teapot(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    app = request_ids(teapot, lambda scope, status, s: told.append((scope["path"], status, s)))
    sent = _run(app, _scope("/tea"))
    assert sent[0]["headers"] == [(b"x-request-id", b"r1")]
    [(path, status, seconds)] = told
    assert (path, status) == ("/tea", 418)
    assert 0 <= seconds < 60


def test_finished_is_told_0_when_no_answer_began() -> None:
    told: list[int] = []

    async def crash(scope: Scope, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    app = request_ids(crash, lambda scope, status, s: told.append(status))
    with pytest.raises(RuntimeError):
        _run(app, _scope("/x"))
    assert told == [0]
