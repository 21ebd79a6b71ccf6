"""Errors of Keyturn's admin API, one class per HTTP status the API documents.

They are kept apart from `keyturn.core.errors.OAuthError` on purpose (DESIGN:
"an OAuth provider error is distinct from an API error"): the token,
revocation and introspection endpoints speak RFC 6749 §5.2 and raise
``OAuthError`` subclasses; the admin API is a REST API whose callers branch on
the status (404: not there, 409: exists already), so it raises these. Both
carry the server's ``error`` and ``error_description``; neither ever holds the
request, so no secret can leak through a message or a ``repr``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from keyturn.core.errors import KeyturnError
from keyturn.core.http import HttpResponse

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "TooManyRequestsError",
    "raise_for_api_error",
]

# Response headers worth keeping: the challenge and the back-off hint, nothing else.
_KEPT_HEADERS = ("www-authenticate", "retry-after")

# Filled as the subclasses below are declared: each names its status once, in its header.
_BY_STATUS: dict[int, type[ApiError]] = {}


class ApiError(KeyturnError):
    """The admin API answered with an error status.

    ``error`` and ``description`` are the server's ``error`` and
    ``error_description`` (``None`` when the body was not Keyturn's JSON, e.g.
    a proxy's HTML page); ``status_code`` is the HTTP status.
    """

    default_status: ClassVar[int] = 0

    def __init_subclass__(cls, *, status: int | None = None, **kwargs: Any) -> None:
        """``class XError(ApiError, status=404)`` sets `default_status` and registers the class,
        so `error_for_status` knows it without a second list to keep in step."""
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.default_status = status
            _BY_STATUS[status] = cls

    def __init__(
        self,
        status_code: int,
        error: str | None = None,
        description: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.error = error
        self.description = description
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self._message())

    @property
    def error_description(self) -> str | None:
        """The RFC 6749 spelling of `description`."""
        return self.description

    def _message(self) -> str:
        text = f"HTTP {self.status_code}"
        if self.error:
            text += f" {self.error}"
        if self.description:
            text += f": {self.description}"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status_code}, error={self.error!r}, "
            f"description={self.description!r})"
        )


class BadRequestError(ApiError, status=400):
    """400: the request is malformed, or names a scope or value the server refuses."""


class AuthenticationError(ApiError, status=401):
    """401: no admin token, or it is unknown, expired or revoked (RFC 6750 ``invalid_token``)."""


class PermissionDeniedError(ApiError, status=403):
    """403: the token is valid but lacks the ``keyturn:admin`` scope."""


class NotFoundError(ApiError, status=404):
    """404: no token or client with that identifier."""


class ConflictError(ApiError, status=409):
    """409: it exists already (a client id, an imported token)."""


class TooManyRequestsError(ApiError, status=429):
    """429: wait ``retry_after`` seconds (from ``Retry-After``; ``None`` when absent)."""

    @property
    def retry_after(self) -> float | None:
        """Read from the kept headers, so the status classes share one constructor."""
        return _retry_after(self.headers)


class InternalServerError(ApiError, status=500):
    """5xx: the server (or a proxy in front of it) failed; retrying later may help."""


def error_for_status(status: int) -> type[ApiError]:
    if status >= 500:
        return InternalServerError
    return _BY_STATUS.get(status, ApiError)


def raise_for_api_error(response: HttpResponse) -> None:
    """Raise the typed `ApiError` for a 4xx/5xx answer; return otherwise."""
    status = response.status_code
    if status < 400:
        return
    error, description = _error_fields(response)
    headers = {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}
    raise error_for_status(status)(status, error, description, headers=headers)


def _error_fields(response: HttpResponse) -> tuple[str | None, str | None]:
    ctype = response.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        return None, None
    try:
        payload: Any = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(payload, dict):
        return None, None
    error = payload.get("error")
    description = payload.get("error_description")
    return (
        error if isinstance(error, str) and error else None,
        description if isinstance(description, str) else None,
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from Keyturn, and not worth a parser here
