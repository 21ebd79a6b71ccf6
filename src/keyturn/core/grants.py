"""Token-endpoint request/process pairs, one builder per grant (oauth4webapi style).

``*_request`` builds an `HttpRequest`; `process_token_response` checks the answer
field by field and returns an `OAuthToken` or raises one of three kinds of
error, kept apart: the provider said no (`OAuthError` subclasses, RFC 6749
§5.2), the provider misbehaved (`InvalidResponseError`), or - in the shells -
the network failed (`TransportError`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from keyturn.core.credentials import (
    AuthorizationCodeCredentials,
    ClientAuthMethod,
    Credentials,
)
from keyturn.core.errors import InvalidResponseError, OAuthError, RateLimitedError
from keyturn.core.http import HttpRequest, HttpResponse, basic_authorization
from keyturn.core.jwt_claims import unverified_claims
from keyturn.core.token import OAuthToken

__all__ = [
    "DEFAULT_LIFETIME",
    "authorization_code_request",
    "estimate_clock_skew",
    "grant_request",
    "process_revocation_response",
    "process_token_response",
    "raise_for_error_response",
    "refresh_request",
    "revocation_request",
]

DEFAULT_LIFETIME = 3600.0
"""Seconds a token is assumed to live when the response has no ``expires_in``
and the access token is not a JWT with an ``exp`` claim (RFC 6749 §5.1 leaves
it to the client). Never "forever", never "already expired"."""

# Response headers worth keeping on an error: never cookies or anything else.
_KEPT_HEADERS = ("retry-after", "www-authenticate", "date")


def _client_auth(
    creds: Credentials, params: dict[str, str], headers: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    method = creds.effective_auth_method
    if method is ClientAuthMethod.BASIC:
        headers["Authorization"] = basic_authorization(creds.client_id, creds.client_secret or "")
    else:
        params["client_id"] = creds.client_id
        if method is not ClientAuthMethod.NONE:
            params["client_secret"] = creds.client_secret or ""
    return params, headers


def _token_request(
    creds: Credentials, endpoint: str, params: dict[str, str], resources: tuple[str, ...] = ()
) -> HttpRequest:
    """``resources``: RFC 8707 ``resource`` values, one parameter each (a list in JSON)."""
    body_params = {**creds.extra_params, **params}
    headers = {"Accept": "application/json"}
    body_params, headers = _client_auth(creds, body_params, headers)
    if creds.effective_auth_method is ClientAuthMethod.JSON:
        headers["Content-Type"] = "application/json"
        data: dict[str, str | list[str]] = dict(body_params)
        if resources:
            data["resource"] = resources[0] if len(resources) == 1 else list(resources)
        body = json.dumps(data).encode()
    else:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        pairs = [*body_params.items(), *(("resource", r) for r in resources)]
        body = urlencode(pairs).encode()
    return HttpRequest("POST", endpoint, headers, body, creds.timeout)


def grant_request(creds: Credentials, endpoint: str) -> HttpRequest:
    """Client credentials (§4.4.2) or password (§4.3.2): everything is in ``creds``."""
    if isinstance(creds, AuthorizationCodeCredentials):
        raise TypeError("the authorization code grant needs a code: use authorization_code_request")
    return _token_request(creds, endpoint, creds.grant_params(), creds.resources)


def authorization_code_request(
    creds: AuthorizationCodeCredentials, endpoint: str, code: str, code_verifier: str | None
) -> HttpRequest:
    """RFC 6749 §4.1.3 with the RFC 7636 §4.5 ``code_verifier``."""
    if not code:
        raise ValueError("an authorization code is required")
    params = creds.grant_params()
    params["code"] = code
    if code_verifier:
        params["code_verifier"] = code_verifier
    elif creds.use_pkce:
        raise ValueError("PKCE is on but no code_verifier is known for this code")
    return _token_request(creds, endpoint, params, creds.resources)


def refresh_request(creds: Credentials, endpoint: str, refresh_token: str) -> HttpRequest:
    """RFC 6749 §6 with the RFC 8707 §2.2 ``resource`` values (the token's audience).

    Scope is left out: the server keeps the original grant's scope.
    """
    params = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _token_request(creds, endpoint, params, creds.resources)


def revocation_request(
    creds: Credentials, endpoint: str, token: str, token_type_hint: str | None
) -> HttpRequest:
    """RFC 7009 §2.1: always form-encoded, client authenticated as at the token endpoint."""
    params = {"token": token}
    if token_type_hint:
        params["token_type_hint"] = token_type_hint
    form_creds = (
        creds.clone_with(auth_method=ClientAuthMethod.POST)
        if creds.effective_auth_method is ClientAuthMethod.JSON
        else creds
    )
    request = _token_request(form_creds, endpoint, params)
    return request


# -- responses --------------------------------------------------------------


def _kept_headers(response: HttpResponse) -> dict[str, str]:
    return {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}


def _json_object(response: HttpResponse) -> dict[str, Any] | None:
    ctype = response.content_type
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        return None
    try:
        data = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def raise_for_error_response(response: HttpResponse, what: str = "token endpoint") -> None:
    """Raise the typed error for a non-2xx answer; return for 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return
    payload = _json_object(response)
    headers = _kept_headers(response)
    if payload is not None and isinstance(payload.get("error"), str) and payload["error"]:
        err = OAuthError.from_response(payload, status, headers)
        if status == 429 and not isinstance(err, RateLimitedError):
            raise RateLimitedError(
                err.description, status_code=429, headers=headers, payload=payload
            ) from None
        raise err
    if status == 429:
        raise RateLimitedError(f"{what} answered HTTP 429", headers=headers)
    text = response.body.decode("utf-8", "replace")
    raise InvalidResponseError(
        f"{what} answered HTTP {status} with {response.content_type or 'an untyped'} body "
        "that is not an OAuth error",
        status_code=status,
        body=text,
    )


def _parse_success(response: HttpResponse) -> dict[str, Any]:
    payload = _json_object(response)
    if payload is None and response.content_type == "application/x-www-form-urlencoded":
        # Some providers (GitHub) answer form-encoded unless asked otherwise.
        try:
            payload = dict(parse_qsl(response.body.decode("utf-8"), strict_parsing=True))
        except (ValueError, UnicodeDecodeError):
            payload = None
    if payload is None:
        # No body in the error: a 200 body may hold a token in a format we cannot read.
        raise InvalidResponseError(
            f"token endpoint answered {response.status_code} with a "
            f"{response.content_type or 'untyped'} body, not a JSON object",
            status_code=response.status_code,
        )
    return payload


def _str_field(payload: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise InvalidResponseError(f"token response has no {name!r}")
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidResponseError(f"token response field {name!r} must be a non-empty string")
    return value


def _expires_in(payload: Mapping[str, Any]) -> int | None:
    value = payload.get("expires_in")
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidResponseError("token response field 'expires_in' must be a number")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int | float) or value < 0 or value != value:  # NaN
        raise InvalidResponseError("token response field 'expires_in' must be a number >= 0")
    return int(value)


def _jwt_exp(access_token: str) -> float | None:
    """The ``exp`` claim of a JWT access token, read without verifying (only a hint)."""
    claims = unverified_claims(access_token)
    exp = claims.get("exp") if claims is not None else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def estimate_clock_skew(response: HttpResponse, local_time: float) -> float | None:
    """Server minus local wall-clock time, from the ``Date`` header (1 s resolution)."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        server = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return server - local_time


def process_token_response(
    response: HttpResponse,
    *,
    now: float,
    default_lifetime: float = DEFAULT_LIFETIME,
    clock_skew: float = 0.0,
) -> OAuthToken:
    """Validate a token response (RFC 6749 §5.1) and stamp its absolute expiry.

    ``now`` is the local wall-clock time of receipt. The lifetime is
    ``expires_in`` when given; else the JWT ``exp`` claim, read against the
    server's clock (``now + clock_skew``); else ``default_lifetime``.
    """
    raise_for_error_response(response)
    if response.status_code != 200:
        raise InvalidResponseError(
            f"token endpoint answered HTTP {response.status_code}, expected 200",
            status_code=response.status_code,
        )
    payload = _parse_success(response)
    access_token = _str_field(payload, "access_token", required=True)
    token_type = _str_field(payload, "token_type", required=True)
    assert access_token is not None
    assert token_type is not None
    expires_in = _expires_in(payload)
    if expires_in is not None:
        lifetime = float(expires_in)
    elif (exp := _jwt_exp(access_token)) is not None:
        lifetime = max(0.0, exp - (now + clock_skew))
    else:
        lifetime = default_lifetime
    known = {"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token"}
    return OAuthToken(
        access_token=access_token,
        token_type=token_type,
        expires_in=expires_in,
        expires_at=now + lifetime,
        refresh_token=_str_field(payload, "refresh_token"),
        scope=_str_field(payload, "scope"),
        id_token=_str_field(payload, "id_token"),
        extra={k: v for k, v in payload.items() if k not in known and k != "expires_at"},
    )


def process_revocation_response(response: HttpResponse) -> None:
    """RFC 7009 §2.2: 200 means revoked (or already unknown); errors are typed."""
    raise_for_error_response(response, "revocation endpoint")
