"""Validate an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 9700 §2.1).

Two kinds of failure, as §4.1.2.1 requires: while the client or redirect URI
is in doubt the user sees an error page and is never redirected (an open
redirector otherwise); after that, errors go back to the client's redirect URI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from keyturn.core.errors import (
    InvalidRequestError,
    OAuthError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from keyturn.server.scopes import grant_scopes, parse_scope
from keyturn.storage.records import GRANT_AUTHORIZATION_CODE, Client

_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_MAX_AGE = re.compile(r"^[0-9]{1,10}$")
KNOWN_PROMPTS = {"none", "login", "consent"}


class PageError(Exception):
    """Shown to the user; the request cannot be trusted to go back to the client."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


class RedirectError(Exception):
    """An RFC 6749 error to send back to the (validated) redirect URI."""

    def __init__(self, error: OAuthError, redirect_uri: str, state: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.redirect_uri = redirect_uri
        self.state = state


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    prompt: frozenset[str]
    raw: tuple[tuple[str, str], ...]
    redirect_uri_given: bool = True
    """Whether the request named ``redirect_uri`` (else: the client's only one), which
    decides whether the token request must repeat it (RFC 6749 §4.1.3)."""
    max_age: int | None = None
    """OIDC Core §3.1.2.1: seconds since the user last signed in beyond which they
    must sign in again."""

    def too_old(self, auth_time: int, now: float) -> bool:
        """Whether a login at ``auth_time`` is older than ``max_age`` allows."""
        return self.max_age is not None and now - auth_time > self.max_age

    def form_fields(self) -> list[tuple[str, str]]:
        """The original parameters, for the consent form to send back."""
        return [(k, v) for k, v in self.raw if k not in ("csrf_token", "decision")]


def redirect_with(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """``redirect_uri`` with ``params`` added to its query, keeping what it had."""
    parts = urlsplit(redirect_uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def parse_authorization_request(
    pairs: list[tuple[str, str]], client: Client | None
) -> AuthorizationRequest:
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            if key in ("client_id", "redirect_uri"):
                raise PageError("Invalid request", f"The parameter {key} appears more than once.")
            duplicated = key
            break
        params[key] = value
    else:
        duplicated = None

    if client is None:
        raise PageError(
            "Unknown application",
            "The application that sent you here is not registered with this server.",
        )
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        if len(client.redirect_uris) != 1:
            raise PageError(
                "Invalid request",
                "The application did not say where to send you back (redirect_uri).",
            )
        redirect_uri = client.redirect_uris[0]
    elif redirect_uri not in client.redirect_uris:
        raise PageError(
            "Invalid redirect",
            "The address the application asked to send you back to is not registered for it.",
        )
    state = params.get("state")

    def fail(error: OAuthError) -> RedirectError:
        return RedirectError(error, redirect_uri, state)

    if duplicated is not None:
        raise fail(InvalidRequestError(f"the parameter {duplicated} appears more than once"))
    if params.get("response_type") != "code":
        raise fail(UnsupportedResponseTypeError("only response_type=code is supported"))
    if GRANT_AUTHORIZATION_CODE not in client.grant_types:
        raise fail(UnauthorizedClientError("this client may not use the authorization code grant"))
    try:
        scopes = grant_scopes(parse_scope(params.get("scope")), client.scopes)
    except OAuthError as exc:
        raise fail(exc) from None

    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise fail(InvalidRequestError("code_challenge_method without code_challenge"))
        if client.is_public:
            raise fail(InvalidRequestError("public clients must use PKCE (code_challenge, S256)"))
    else:
        method = method or "plain"
        if method not in ("S256", "plain"):
            raise fail(InvalidRequestError(f"unsupported code_challenge_method {method!r}"))
        if method == "plain" and not client.allow_plain_pkce:
            raise fail(InvalidRequestError("use code_challenge_method=S256; plain is refused"))
        if not _CHALLENGE.match(challenge):
            raise fail(InvalidRequestError("code_challenge must be 43-128 unreserved characters"))

    prompt = frozenset(params.get("prompt", "").split())
    if prompt - KNOWN_PROMPTS:
        raise fail(
            InvalidRequestError(f"unsupported prompt {' '.join(sorted(prompt - KNOWN_PROMPTS))}")
        )
    if "none" in prompt and len(prompt) > 1:
        raise fail(InvalidRequestError("prompt=none cannot be combined with other values"))
    max_age = params.get("max_age")
    if max_age is not None and not _MAX_AGE.match(max_age):
        raise fail(InvalidRequestError("max_age must be a whole number of seconds"))

    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        code_challenge=challenge,
        code_challenge_method=method if challenge else None,
        nonce=params.get("nonce"),
        prompt=prompt,
        raw=tuple(params.items()),
        redirect_uri_given="redirect_uri" in params,
        max_age=int(max_age) if max_age is not None else None,
    )
