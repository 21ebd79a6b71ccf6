"""JSON responses for OAuth endpoints: ``no-store`` on everything with a token or an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(
    content: Any,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    no_store: bool = True,
) -> Response:
    merged = dict(NO_STORE) if no_store else {}
    if headers:
        merged.update(headers)
    return Response(
        orjson.dumps(content),
        status_code=status_code,
        headers=merged,
        media_type="application/json",
    )
