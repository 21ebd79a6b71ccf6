"""One request header, read straight from the ASGI scope.

Starlette's ``request.headers.get`` builds a `Headers` view, lower-cases and
encodes the name, and raises and catches a ``KeyError`` for a header that is
absent (``Authorization`` on every ``client_secret_post`` request). The token
and introspection endpoints read three headers per request, so they read them
here: the same first value, decoded the same way (latin-1), for the lower-case
names ASGI servers give.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection


def header(request: HTTPConnection, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), or None."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
