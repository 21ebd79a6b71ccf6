"""What a client is and which grant it uses: immutable, given once.

These are plain data (no I/O), so they live in the core beside the request
builders that read them; `keyturn.client` re-exports them. ``clone_with``
returns a changed copy, e.g. ``creds.clone_with(token=saved_token)`` to start a
client from a token loaded elsewhere. Secrets never appear in ``repr``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from keyturn.core.token import OAuthToken

__all__ = [
    "AuthorizationCodeCredentials",
    "ClientAuthMethod",
    "ClientCredentials",
    "Credentials",
    "PasswordCredentials",
]

_SECRET_FIELDS = frozenset({"client_secret", "password"})
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class ClientAuthMethod(StrEnum):
    """How the client authenticates at the token endpoint (RFC 6749 §2.3)."""

    BASIC = "client_secret_basic"
    """HTTP Basic with the url-encoded id and secret (the RFC's preferred way)."""
    POST = "client_secret_post"
    """``client_id`` and ``client_secret`` in the form body."""
    JSON = "client_secret_json"
    """The whole request as a JSON body with ``client_id`` and ``client_secret`` in it."""
    NONE = "none"
    """A public client: ``client_id`` only (use PKCE)."""


@dataclass(frozen=True, kw_only=True, repr=False)
class Credentials:
    """Options every grant shares. Use one of the subclasses."""

    grant_type: ClassVar[str] = ""

    client_id: str
    client_secret: str | None = None
    token_url: str | None = None
    """The token endpoint; when omitted it is discovered from ``issuer`` (RFC 8414)."""
    issuer: str | None = None
    authorization_url: str | None = None
    revocation_url: str | None = None
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    """Auth0's name for the API the token is for; standard providers use ``resource``."""
    resource: str | tuple[str, ...] = ()
    """RFC 8707 resource indicators, one or many absolute URIs: sent with the
    authorization request and every token request, refreshes included."""
    auth_method: ClientAuthMethod | None = None
    """Defaults to Basic with a secret and ``none`` without one."""
    extra_params: Mapping[str, str] = field(default_factory=dict)
    """Extra token-request parameters, sent with every grant and refresh."""
    timeout: float = 10.0
    """Seconds for each token-endpoint request."""
    token: OAuthToken | None = None
    """A token to start with (for example one saved by ``on_token_update``)."""
    store_key: str | None = None
    """Added to the store key: set it to the user's id when users share a store."""
    allow_insecure_http: bool = False
    """Allow ``http://`` endpoints on hosts other than loopback (tests only)."""

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id is required")
        scopes: Iterable[str] = self.scopes.split() if isinstance(self.scopes, str) else self.scopes
        object.__setattr__(self, "scopes", tuple(dict.fromkeys(scopes)))
        resources = (self.resource,) if isinstance(self.resource, str) else self.resource
        object.__setattr__(self, "resource", tuple(dict.fromkeys(resources)))
        for uri in self.resources:
            _check_resource(uri)
        object.__setattr__(self, "extra_params", MappingProxyType(dict(self.extra_params)))
        if self.auth_method is not None:
            object.__setattr__(self, "auth_method", ClientAuthMethod(self.auth_method))
        if not self.token_url and not self.issuer:
            raise ValueError("give token_url or issuer (for RFC 8414 discovery)")
        for name in ("token_url", "issuer", "authorization_url", "revocation_url"):
            self.check_url(getattr(self, name))
        if self.effective_auth_method is not ClientAuthMethod.NONE and not self.client_secret:
            raise ValueError(f"auth_method {self.effective_auth_method} needs a client_secret")

    def check_url(self, url: str | None) -> None:
        """Endpoints must be HTTPS, except on loopback (RFC 6749 §3.1, RFC 9700 §2)."""
        if url is None:
            return
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return
        if parts.scheme == "http" and (parts.hostname in _LOOPBACK or self.allow_insecure_http):
            return
        raise ValueError(f"endpoint must be an https:// URL: {parts.scheme}://{parts.hostname}")

    @property
    def effective_auth_method(self) -> ClientAuthMethod:
        if self.auth_method is not None:
            return self.auth_method
        return ClientAuthMethod.BASIC if self.client_secret else ClientAuthMethod.NONE

    @property
    def scope(self) -> str | None:
        return " ".join(self.scopes) or None

    @property
    def resources(self) -> tuple[str, ...]:
        """``resource`` as a tuple (it is normalised to one on construction)."""
        return self.resource if isinstance(self.resource, tuple) else (self.resource,)

    @property
    def can_fetch_unattended(self) -> bool:
        """Whether a token can be obtained without a user in a browser."""
        return True

    def grant_params(self) -> dict[str, str]:
        """The grant's own body parameters (without client authentication)."""
        params = {"grant_type": self.grant_type}
        if self.scope:
            params["scope"] = self.scope
        if self.audience:
            params["audience"] = self.audience
        return params

    def _key_material(self) -> dict[str, Any]:
        return {
            "grant": self.grant_type,
            "endpoint": self.token_url or self.issuer,
            "client_id": self.client_id,
            "scopes": sorted(self.scopes),
            "audience": self.audience,
            "resource": sorted(self.resources),
            "extra": sorted(self.extra_params.items()),
            "key": self.store_key,
        }

    def cache_key(self) -> str:
        """A store key: different clients, scopes and users never share a token.

        It is a hash, so a shared store (Redis) does not learn user names.
        """
        material = json.dumps(self._key_material(), sort_keys=True).encode()
        return "keyturn-" + hashlib.sha256(material).hexdigest()[:40]

    def clone_with(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS:
                shown.append(f"{f.name}={'<hidden>' if value else None}")
            elif value not in (None, (), {}) and f.default is not value:
                shown.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    __str__ = __repr__


def _check_resource(uri: object) -> None:
    """RFC 8707 §2: an absolute URI without a fragment."""
    if not isinstance(uri, str):
        raise TypeError("resource must be a string or a tuple of strings")
    parts = urlsplit(uri)
    if not parts.scheme or "#" in uri:
        raise ValueError(f"resource must be an absolute URI without a fragment: {uri!r}")


@dataclass(frozen=True, kw_only=True, repr=False)
class ClientCredentials(Credentials):
    """RFC 6749 §4.4: a machine client acting for itself."""

    grant_type: ClassVar[str] = "client_credentials"


@dataclass(frozen=True, kw_only=True, repr=False)
class PasswordCredentials(Credentials):
    """RFC 6749 §4.3, resource owner password (legacy; RFC 9700 advises against it)."""

    grant_type: ClassVar[str] = "password"

    username: str
    password: str

    def grant_params(self) -> dict[str, str]:
        params = super().grant_params()
        params["username"] = self.username
        params["password"] = self.password
        return params

    def _key_material(self) -> dict[str, Any]:
        return {**super()._key_material(), "username": self.username}


@dataclass(frozen=True, kw_only=True, repr=False)
class AuthorizationCodeCredentials(Credentials):
    """RFC 6749 §4.1 with PKCE S256 (RFC 7636) on by default."""

    grant_type: ClassVar[str] = "authorization_code"

    redirect_uri: str
    use_pkce: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.redirect_uri:
            raise ValueError("redirect_uri is required")
        if not self.use_pkce and self.effective_auth_method is ClientAuthMethod.NONE:
            raise ValueError("a public client must use PKCE (RFC 9700 §2.1.1)")

    @property
    def can_fetch_unattended(self) -> bool:
        return False

    def grant_params(self) -> dict[str, str]:
        # The code, verifier and redirect_uri are added per exchange; scope is
        # fixed by the authorization request, audience may still narrow it.
        params = {"grant_type": self.grant_type, "redirect_uri": self.redirect_uri}
        if self.audience:
            params["audience"] = self.audience
        return params

    def _key_material(self) -> dict[str, Any]:
        return {**super()._key_material(), "redirect_uri": self.redirect_uri}
