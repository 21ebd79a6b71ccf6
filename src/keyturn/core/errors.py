"""OAuth 2.0 errors, one class per RFC error code, shared by server and client.

The server raises them and one exception handler turns them into the RFC 6749
§5.2 JSON body; the client SDK builds the same classes back from a provider's
error response (`from_response`). Each carries a public ``description`` that is
safe to show and a private ``detail`` that is only ever logged.

Client-side failures that are *not* the provider saying no live beside them:
`InvalidResponseError` (the provider misbehaved) and `TransportError` (the
network failed), so callers can tell the three apart as oauth4webapi does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict, Unpack

__all__ = [
    "AccessDeniedError",
    "InsufficientScopeError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidResponseError",
    "InvalidScopeError",
    "InvalidTargetError",
    "InvalidTokenError",
    "KeyturnError",
    "LoginRequiredError",
    "OAuthError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ServerError",
    "StoreLockTimeoutError",
    "TemporarilyUnavailableError",
    "TransportError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UnsupportedMediaTypeError",
    "UnsupportedResponseTypeError",
    "UnsupportedTokenTypeError",
    "error_class_for",
]


class KeyturnError(Exception):
    """Base of every error Keyturn raises on purpose."""


class ErrorOptions(TypedDict, total=False):
    """What every `OAuthError` takes besides its description and headers."""

    uri: str | None
    detail: str | None
    status_code: int | None
    payload: Mapping[str, Any] | None


class OAuthError(KeyturnError):
    """An error with an RFC 6749 ``error`` code: the provider said no.

    ``status_code`` is the HTTP status that carries it; ``description`` is the
    public ``error_description``; ``detail`` is private and never sent.
    """

    error: ClassVar[str] = "invalid_request"
    status_code: ClassVar[int] = 400

    def __init__(
        self,
        description: str | None = None,
        *,
        uri: str | None = None,
        detail: str | None = None,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        self.description = description
        self.uri = uri
        self.detail = detail
        if status_code is not None:
            # Instance override: a provider may answer a code with another status.
            self.status_code = status_code  # type: ignore[misc]
        self.headers: dict[str, str] = dict(headers or {})
        self.payload: dict[str, Any] = dict(payload or {})
        super().__init__(self._message())

    def _message(self) -> str:
        if self.description:
            return f"{self.error}: {self.description}"
        return self.error

    def to_dict(self) -> dict[str, str]:
        """The RFC 6749 §5.2 body: ``error`` and, when set, description and URI."""
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        if self.uri:
            body["error_uri"] = self.uri
        return body

    @classmethod
    def from_response(
        cls,
        payload: Mapping[str, Any],
        status_code: int,
        headers: Mapping[str, str] | None = None,
    ) -> OAuthError:
        """Rebuild the typed error a provider sent (client side)."""
        code = str(payload.get("error", "")) or "server_error"
        klass = error_class_for(code)
        description = payload.get("error_description")
        uri = payload.get("error_uri")
        err = klass(
            str(description) if description is not None else None,
            uri=str(uri) if uri is not None else None,
            status_code=status_code,
            headers=headers,
            payload=payload,
        )
        if klass is OAuthError:
            # An extension code we have no class for: keep the provider's word.
            err.error = code  # type: ignore[misc]
            err.args = (err._message(),)
        return err

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.error!r}, {self.description!r}, status={self.status_code})"


class InvalidRequestError(OAuthError):
    error = "invalid_request"
    status_code = 400


class InvalidClientError(OAuthError):
    error = "invalid_client"
    status_code = 401


class InvalidGrantError(OAuthError):
    error = "invalid_grant"
    status_code = 400


class UnauthorizedClientError(OAuthError):
    error = "unauthorized_client"
    status_code = 400


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"
    status_code = 400


class InvalidScopeError(OAuthError):
    error = "invalid_scope"
    status_code = 400


class InvalidTargetError(OAuthError):
    """RFC 8707: the requested audience/resource is not allowed."""

    error = "invalid_target"
    status_code = 400


class AccessDeniedError(OAuthError):
    """The resource owner or the server refused the request (RFC 6749 §4.1.2.1)."""

    error = "access_denied"
    status_code = 403


class LoginRequiredError(OAuthError):
    error = "login_required"
    status_code = 400


class UnsupportedResponseTypeError(OAuthError):
    error = "unsupported_response_type"
    status_code = 400


class UnsupportedTokenTypeError(OAuthError):
    """RFC 7009 §2.2.1."""

    error = "unsupported_token_type"
    status_code = 400


class InvalidTokenError(OAuthError):
    """RFC 6750 §3.1: the bearer token is expired, revoked, malformed or invalid."""

    error = "invalid_token"
    status_code = 401


class InsufficientScopeError(OAuthError):
    """RFC 6750 §3.1: the token lacks a scope the resource needs."""

    error = "insufficient_scope"
    status_code = 403


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500


class TemporarilyUnavailableError(OAuthError):
    error = "temporarily_unavailable"
    status_code = 503


class RateLimitedError(OAuthError):
    """Too many requests: wait ``retry_after`` seconds (HTTP 429).

    Uses ``slow_down``, the code registered for token endpoints that want a
    client to back off (IANA "OAuth Extensions Error" registry, RFC 8628).
    """

    error = "slow_down"
    status_code = 429

    def __init__(
        self,
        description: str | None = None,
        *,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Unpack[ErrorOptions],
    ) -> None:
        headers = dict(headers or {})
        if retry_after is None:
            retry_after = _parse_retry_after(headers)
        elif not any(k.lower() == "retry-after" for k in headers):
            headers["Retry-After"] = str(max(1, int(-(-retry_after // 1))))
        self.retry_after = retry_after
        super().__init__(description, headers=headers, **options)


class UnsupportedMediaTypeError(InvalidRequestError):
    """A body that is neither form-encoded nor JSON: HTTP 415, ``invalid_request``."""

    status_code = 415


class PayloadTooLargeError(InvalidRequestError):
    """A body over the documented limit: HTTP 413, ``invalid_request``."""

    status_code = 413


class InvalidResponseError(KeyturnError):
    """The provider answered something that is not a valid OAuth response."""

    def __init__(self, message: str, *, status_code: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        # Only a prefix: an HTML error page can be large, and may echo input.
        self.body = body[:500]


class TransportError(KeyturnError):
    """The token endpoint could not be reached (timeout, refused, reset)."""


class StoreLockTimeoutError(KeyturnError, TimeoutError):
    """A token store's lock stayed held (by another process or thread fetching the
    same token) past the store's timeout, so this call got no token; retry it, or
    give the store a longer lock timeout."""


_BY_CODE: dict[str, type[OAuthError]] = {
    klass.error: klass
    for klass in (
        InvalidRequestError,
        InvalidClientError,
        InvalidGrantError,
        UnauthorizedClientError,
        UnsupportedGrantTypeError,
        InvalidScopeError,
        InvalidTargetError,
        AccessDeniedError,
        LoginRequiredError,
        UnsupportedResponseTypeError,
        UnsupportedTokenTypeError,
        InvalidTokenError,
        InsufficientScopeError,
        ServerError,
        TemporarilyUnavailableError,
        RateLimitedError,
    )
}


def error_class_for(code: str) -> type[OAuthError]:
    """The class for an RFC error code; unknown codes get the plain base class."""
    return _BY_CODE.get(code, OAuthError)


def _parse_retry_after(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
