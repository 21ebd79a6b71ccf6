"""Read and parse a token-endpoint body: form or JSON, bounded, no duplicates.

Written here rather than with Starlette's ``request.form()`` because RFC 6749
§3.2 forbids repeated parameters, which a multidict parser silently merges,
and because the size limit must hold before the body is buffered whole.
"""

from __future__ import annotations

import functools
import json
from typing import Any
from urllib.parse import unquote

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from keyturn.core.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from keyturn.server.request_headers import header

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MAX_REMEMBERED = 512
"""The longest value `_public_unquote` keeps (its cache holds at most 512 of them)."""
CLOSE = {"Connection": "close"}
"""On a refusal that leaves a body unread: the connection cannot carry another request."""


class RequestTimeoutError(InvalidRequestError):
    """The body did not arrive within ``KEYTURN_BODY_TIMEOUT``: HTTP 408, then close."""

    status_code = 408


def declared_length(request: Request, limit: int) -> int | None:
    """``Content-Length`` checked against ``limit`` before a byte of the body is read."""
    declared = header(request, b"content-length")
    if declared is None:
        return None
    if not (declared.isascii() and declared.isdigit()) or len(declared) > 19:
        raise InvalidRequestError("the Content-Length header is not a number", headers=CLOSE)
    if int(declared) > limit:
        raise too_large(limit)
    return int(declared)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to exceed ``limit``.

    How long it may take is bounded by the server (``KEYTURN_BODY_TIMEOUT``,
    `keyturn.server.http_protocol`), which costs the hot path nothing.

    Read from ``receive`` (`receive_body`) with the semantics of Starlette's
    ``request.stream()``, less its async generator (whose creation,
    first-iteration hook and ``aclose`` cost a token request more than its one
    body message): a client that hangs up is ``ClientDisconnect``, a body
    already read is returned, and a second read is an error.
    """
    declared_length(request, limit)
    read: bytes | None = getattr(request, "_body", None)  # request.body() came first
    if read is not None:
        if len(read) > limit:
            raise too_large(limit)
        return read
    if request._stream_consumed:
        raise RuntimeError("Stream consumed")
    try:
        body = await receive_body(request.receive, limit)
    except ClientDisconnect:
        request._is_disconnected = True
        raise
    request._stream_consumed = True
    return body


async def receive_body(receive: Receive, limit: int) -> bytes:
    """Every body message of ``receive``, joined; refused (413) as soon as it
    exceeds ``limit``; ``ClientDisconnect`` if the client hangs up first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body is larger than the {limit}-byte limit", headers=CLOSE
    )


def media_type(request: Request) -> str:
    return (header(request, b"content-type") or "").split(";", 1)[0].strip().lower()


async def parse_params(request: Request, limit: int) -> dict[str, str]:
    """The body's parameters as a flat ``str -> str`` dict."""
    kind = media_type(request)
    if kind not in (FORM, JSON):
        raise UnsupportedMediaTypeError(
            f"send the body as {FORM} or {JSON}"
            + (f", not {kind}" if kind else " with a Content-Type header")
        )
    body = await read_body(request, limit)
    params = parse_json(body) if kind == JSON else parse_form(body)
    reject_unstorable(params)
    return params


def is_storable(text: str) -> bool:
    """No NUL and no lone UTF-16 surrogate: text that UTF-8 and PostgreSQL can hold.

    NUL never belongs in an OAuth parameter and PostgreSQL text cannot store it;
    a lone surrogate (JSON's ``"\\ud800"``) decodes to a Python string that no
    encoder writes, so it would fail later, in a hash, a log line or the database.
    """
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reject_unstorable(params: dict[str, str]) -> None:
    for key, value in params.items():
        if not (is_storable(key) and is_storable(value)):
            raise InvalidRequestError(
                "parameters must be valid Unicode text without NUL characters"
            )


def _form_unquote(text: str) -> str:
    # What parse_qsl does to each name and value ('+' is a space, then %XX);
    # most token-request parameters have neither, so they are returned as is.
    if "+" in text:
        text = text.replace("+", " ")
    return unquote(text, errors="strict") if "%" in text else text


PUBLIC_REPEATED = frozenset({"grant_type", "scope", "resource", "audience", "redirect_uri"})
"""Parameters whose values are no secret and come alike in a client's every request."""


@functools.lru_cache(maxsize=512)
def _public_unquote(text: str) -> str:
    """`_form_unquote` remembered: a resource URI such as ``https%3A%2F%2Fapi...`` is
    decoded once, not on every token request (the standard library's decoder is
    Python: 2.5 us). Only for `PUBLIC_REPEATED` values, so that no secret or
    password outlives its request in the cache."""
    return _form_unquote(text)


def parse_form(body: bytes) -> dict[str, str]:
    """``application/x-www-form-urlencoded``, split exactly as ``parse_qsl`` would.

    (``keep_blank_values=True``: a name without ``=`` has the value ``""``.)
    """
    params: dict[str, str] = {}
    try:
        text = body.decode("utf-8")
        for chunk in text.split("&"):
            if not chunk:
                continue
            raw_key, _, raw_value = chunk.partition("=")
            key = _form_unquote(raw_key)
            if key in params:
                raise InvalidRequestError(f"the parameter {key!r} appears more than once")
            if key in PUBLIC_REPEATED and len(raw_value) <= MAX_REMEMBERED:
                params[key] = _public_unquote(raw_value)
            else:
                params[key] = _form_unquote(raw_value)
    except UnicodeDecodeError:
        raise InvalidRequestError("the form body is not valid UTF-8") from None
    # RFC 6749 §3.1: parameters sent without a value are treated as omitted.
    return {k: v for k, v in params.items() if v != ""}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidRequestError(f"the parameter {key!r} appears more than once")
        seen[key] = value
    return seen


def parse_json(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body, object_pairs_hook=_no_duplicates)
    except InvalidRequestError:
        raise
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("the body is not valid JSON") from None
    except RecursionError:
        # The C decoder recurses once per level; its recursion limit stops it first.
        raise InvalidRequestError("the JSON body is nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the JSON body must be an object")
    params: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, list) and key in ("scope", "audience", "resource"):
            if not all(isinstance(v, str) for v in value):
                raise InvalidRequestError(f"{key!r} must be a string or a list of strings")
            params[key] = " ".join(value)
        elif isinstance(value, str):
            if value != "":
                params[key] = value
        else:
            raise InvalidRequestError(f"the parameter {key!r} must be a string")
    return params
