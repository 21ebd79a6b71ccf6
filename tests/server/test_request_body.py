"""`read_body` reads ``receive`` as Starlette's ``request.stream()`` would: every
chunk, the limit across chunks, a hang-up, a body already read, a second read;
`parse_form` remembers the decoding of public values only."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.requests import ClientDisconnect, Request

from keyturn.core.errors import InvalidRequestError, PayloadTooLargeError
from keyturn.server.request_body import _public_unquote, parse_form, read_body

pytestmark = pytest.mark.anyio


def request(messages: list[dict[str, Any]], length: int | None = None) -> Request:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    return Request(scope, receive)


def chunk(body: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_every_chunk_is_read_and_joined() -> None:
    got = request(
        [
            chunk(b"a=1", True),
            chunk(b""),
        ]
    )
    assert await read_body(got, 100) == b"a=1"
    parts = request([chunk(b"a=1", True), chunk(b"&b=", True), chunk(b"2")])
    assert await read_body(parts, 100) == b"a=1&b=2"


async def test_the_limit_holds_across_chunks_without_a_content_length() -> None:
    messages = [chunk(b"x" * 60, True), chunk(b"x" * 60, True), chunk(b"never read")]
    with pytest.raises(PayloadTooLargeError):
        await read_body(request(messages), 100)
    assert messages == [chunk(b"never read")]  # refused as soon as it was known


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    messages = [chunk(b"x")]
    with pytest.raises(PayloadTooLargeError):
        await read_body(request(messages, length=101), 100)
    assert messages == [chunk(b"x")]


async def test_a_client_that_hangs_up_is_a_client_disconnect() -> None:
    got = request([chunk(b"a=", True), {"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnect):
        await read_body(got, 100)
    assert await got.is_disconnected()


async def test_a_body_read_before_is_returned_and_a_second_read_is_an_error() -> None:
    earlier = request([chunk(b"a=1")])
    assert await earlier.body() == b"a=1"
    assert await read_body(earlier, 100) == b"a=1"
    with pytest.raises(PayloadTooLargeError):
        await read_body(earlier, 2)
    once = request([chunk(b"a=1")])
    assert await read_body(once, 100) == b"a=1"
    with pytest.raises(RuntimeError, match="Stream consumed"):
        await read_body(once, 100)


def test_public_values_are_remembered_and_no_secret_is() -> None:
    """A resource URI is decoded once for all requests; a password or secret never
    outlives its request in that cache."""
    _public_unquote.cache_clear()
    form = {
        "grant_type": "password",
        "username": "ana@example.test",
        "password": "p@ss w%rd",
        "client_secret": "s%cr+t",
        "resource": "https://api.test/x y",
    }
    body = urlencode(form).encode()
    assert parse_form(body) == form
    assert parse_form(body) == form
    remembered = _public_unquote.cache_info()
    assert (remembered.currsize, remembered.hits) == (2, 2)  # grant_type and resource


def test_a_bad_public_value_is_refused_every_time() -> None:
    _public_unquote.cache_clear()
    for _ in range(2):  # a failed decoding is not remembered as a value
        with pytest.raises(InvalidRequestError, match="UTF-8"):
            parse_form(b"grant_type=client_credentials&resource=%FF")
    assert parse_form(b"resource=" + b"%41" * 600) == {"resource": "A" * 600}  # too long
    assert _public_unquote.cache_info().currsize == 1
