"""The authorization-code front channel: build the URL, read the redirect back.

`parse_redirect` checks ``state`` before anything else (RFC 6749 §10.12, RFC
9700 §4.7), then ``iss`` when the provider sends it (RFC 9207), and turns
``?error=...`` into the typed error (``access_denied`` ->
`AccessDeniedError`).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from keyturn.core.credentials import AuthorizationCodeCredentials
from keyturn.core.errors import InvalidResponseError, OAuthError
from keyturn.core.pkce import Pkce

__all__ = [
    "AuthorizationRequest",
    "StateMismatchError",
    "build_authorization_request",
    "parse_redirect",
]


class StateMismatchError(InvalidResponseError):
    """The redirect's ``state`` is missing or is not one this client issued (possible CSRF)."""


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A URL to send the user to, and what the client must remember until the redirect."""

    url: str
    state: str
    code_verifier: str | None
    nonce: str | None = None
    """OIDC Core §3.1.2.1: sent when ``openid`` is in scope; the ID token must echo it."""
    max_age: float | None = None
    """``max_age`` if the caller asked for one: the ID token must then carry ``auth_time``."""

    def __repr__(self) -> str:
        return f"AuthorizationRequest(url={self.url!r})"


def build_authorization_request(
    creds: AuthorizationCodeCredentials,
    endpoint: str,
    *,
    state: str | None = None,
    additional_params: Mapping[str, str] | None = None,
) -> AuthorizationRequest:
    """RFC 6749 §4.1.1 plus PKCE S256; a random ``state`` when none is given.

    With ``openid`` in scope a random ``nonce`` is sent too (OIDC Core
    §3.1.2.1), which the ID token must carry back.
    """
    creds.check_url(endpoint)
    state = state or secrets.token_urlsafe(24)
    params = {
        "response_type": "code",
        "client_id": creds.client_id,
        "redirect_uri": creds.redirect_uri,
        "state": state,
    }
    if creds.scope:
        params["scope"] = creds.scope
    nonce = None
    if "openid" in creds.scopes:
        nonce = params["nonce"] = secrets.token_urlsafe(24)
    verifier = None
    if creds.use_pkce:
        pkce = Pkce.generate()
        verifier = pkce.verifier
        params["code_challenge"] = pkce.challenge
        params["code_challenge_method"] = pkce.method
    for key, value in (additional_params or {}).items():
        if key in params:
            raise ValueError(f"additional_params may not override {key!r}")
        params[key] = value
    parts = urlsplit(endpoint)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    query += [("resource", uri) for uri in creds.resources]  # RFC 8707 §2.1
    url = urlunsplit(parts._replace(query=urlencode(query)))
    return AuthorizationRequest(url, state, verifier, nonce, _max_age(params.get("max_age")))


def _max_age(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError("max_age must be a number of seconds") from None
    if not seconds >= 0:
        raise ValueError("max_age must be a number of seconds")
    return seconds


def parse_redirect(url: str, expected_state: str | None, *, issuer: str | None = None) -> str:
    """The code from the redirect URL, after checking state, issuer and errors."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    got = query.get("state")
    if expected_state is None or got is None or not hmac.compare_digest(got, expected_state):
        raise StateMismatchError("the redirect's state does not match the request's")
    if issuer is not None and "iss" in query and query["iss"] != issuer:
        raise InvalidResponseError("the redirect's iss is not the expected issuer (RFC 9207)")
    if "error" in query:
        raise OAuthError.from_response(query, 400)
    code = query.get("code")
    if not code:
        raise InvalidResponseError("the redirect has neither a code nor an error")
    return code
