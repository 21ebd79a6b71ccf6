"""JSON responses for OAuth endpoints: ``no-store`` on everything with a token or an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_NO_STORE_RAW = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in NO_STORE.items()]
_JSON_TYPE = (b"content-type", b"application/json")


class JSONAnswer(Response):
    """A Starlette `Response` of JSON whose plain headers are laid out ready-made.

    Every token and introspection answer is one of these: without extra headers,
    Starlette's ``init_headers`` (a pass over the headers, encoding each) is
    skipped for the same raw headers in the same order. Extra headers (an
    error's ``WWW-Authenticate`` or ``Retry-After``), and the statuses that carry
    no ``Content-Length``, go through Starlette's way.
    """

    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        no_store: bool = True,
    ) -> None:
        body = orjson.dumps(content)
        if headers or status_code < 200 or status_code in (204, 304):
            merged = dict(NO_STORE) if no_store else {}
            merged.update(headers or {})
            super().__init__(body, status_code, merged)
            return
        self.status_code = status_code
        self.background = None
        self.body = body
        length = (b"content-length", str(len(body)).encode("ascii"))
        self.raw_headers = (
            [*_NO_STORE_RAW, length, _JSON_TYPE] if no_store else [length, _JSON_TYPE]
        )


def json_response(
    content: Any,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    no_store: bool = True,
) -> Response:
    return JSONAnswer(content, status_code, headers, no_store=no_store)
