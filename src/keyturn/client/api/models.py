"""Typed results of Keyturn's API: frozen dataclasses, read from JSON field by field.

Plain dataclasses rather than pydantic models, because the base install (the
SDK) must not pull pydantic in. Every field is checked as it is read, so a
server that sends something else fails with `InvalidResponseError` at the
call, not later as an ``AttributeError`` deep in the caller's code. Fields a
newer server adds land in ``extra`` instead of breaking older SDKs. Token
values and client secrets never appear in a ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Self

from keyturn.core.errors import InvalidResponseError

__all__ = [
    "Client",
    "ClientSecretInfo",
    "ClientWithSecret",
    "ImportResult",
    "Introspection",
    "IssuedToken",
    "LegacyToken",
    "RevokeResult",
    "Token",
    "TokenPage",
]


class _Reader:
    """Reads one JSON object, naming the object and the field in every error."""

    def __init__(self, data: Any, what: str) -> None:
        if not isinstance(data, dict):
            raise InvalidResponseError(f"{what} is not a JSON object")
        self.data: dict[str, Any] = data
        self.what = what
        self.read: set[str] = set()

    def _bad(self, name: str, kind: str) -> InvalidResponseError:
        return InvalidResponseError(f"{self.what}: field {name!r} must be {kind}")

    def raw(self, name: str, *, required: bool = True) -> Any:
        self.read.add(name)
        if name not in self.data and required:
            raise InvalidResponseError(f"{self.what}: field {name!r} is missing")
        return self.data.get(name)

    def text(self, name: str) -> str:
        value = self.raw(name)
        if not isinstance(value, str):
            raise self._bad(name, "a string")
        return value

    def opt_text(self, name: str) -> str | None:
        value = self.raw(name, required=False)
        if value is not None and not isinstance(value, str):
            raise self._bad(name, "a string or null")
        return value

    def integer(self, name: str) -> int:
        value = self.raw(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(name, "an integer")
        return value

    def opt_integer(self, name: str) -> int | None:
        value = self.raw(name, required=False)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise self._bad(name, "an integer or null")
        return value

    def flag(self, name: str) -> bool:
        value = self.raw(name)
        if not isinstance(value, bool):
            raise self._bad(name, "true or false")
        return value

    def texts(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(name, "a list of strings")
        return tuple(value)

    def extra(self) -> Mapping[str, Any]:
        return MappingProxyType({k: v for k, v in self.data.items() if k not in self.read})


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    """A token as the admin API shows it: what it is, never its value."""

    token_id: str
    kind: str
    """``access_token``, ``refresh_token`` or ``legacy`` (imported, not yet exchanged)."""
    client_id: str
    subject: str | None
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    grant_type: str
    issued_at: int
    expires_at: int
    revoked_at: int | None
    family_id: str | None
    active: bool
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, "token")
        return cls(
            token_id=r.text("token_id"),
            kind=r.text("kind"),
            client_id=r.text("client_id"),
            subject=r.opt_text("subject"),
            scopes=r.texts("scopes"),
            audience=r.texts("audience"),
            grant_type=r.text("grant_type"),
            issued_at=r.integer("issued_at"),
            expires_at=r.integer("expires_at"),
            revoked_at=r.opt_integer("revoked_at"),
            family_id=r.opt_text("family_id"),
            active=r.flag("active"),
            extra=r.extra(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenPage:
    """One page of a token listing; ``next_cursor`` is ``None`` on the last page."""

    items: tuple[Token, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, "token page")
        items = r.raw("items")
        if not isinstance(items, list):
            raise InvalidResponseError("token page: field 'items' must be a list")
        return cls(
            items=tuple(Token.from_json(item) for item in items),
            next_cursor=r.opt_text("next_cursor"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedToken:
    """A token just minted (create, renew): the value is shown this once."""

    token: Token
    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    scope: str

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value that presents this token."""
        return f"Bearer {self.access_token}"

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, "issued token")
        access_token = r.text("access_token")
        if not access_token:
            raise InvalidResponseError("issued token: field 'access_token' is empty")
        return cls(
            token=Token.from_json(r.raw("token")),
            access_token=access_token,
            token_type=r.text("token_type"),
            expires_in=r.integer("expires_in"),
            scope=r.text("scope"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeResult:
    """How many tokens a revocation took with it (a refresh token takes its family)."""

    revoked: int
    token_ids: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, "revocation result")
        return cls(revoked=r.integer("revoked"), token_ids=r.texts("token_ids"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """The identifiers given to imported legacy tokens, in the order sent."""

    imported: int
    token_ids: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, "import result")
        return cls(imported=r.integer("imported"), token_ids=r.texts("token_ids"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSecretInfo:
    """A secret that works now, named by its label and dates (never its value)."""

    label: str
    """``current``, or ``previous`` during a rotation's overlap."""
    created_at: int | None
    """``None`` for a secret set before the server recorded when."""
    expires_at: int | None
    """When a previous secret stops working; ``None`` for the current one."""

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, "client secret")
        return cls(
            label=r.text("label"),
            created_at=r.opt_integer("created_at"),
            expires_at=r.opt_integer("expires_at"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Client:
    """A registered client, without its secret (only its hash is kept)."""

    client_id: str
    name: str
    is_public: bool
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_methods: tuple[str, ...]
    access_token_lifetime: int | None
    rate_limit: int | None
    can_introspect: bool
    created_at: int
    updated_at: int
    secrets: tuple[ClientSecretInfo, ...] = ()
    """The secrets that work now: the current one, and the previous one during a
    rotation's overlap. Empty for a public client (or a server older than this SDK)."""
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, "client")
        secrets = r.raw("secrets", required=False)
        if secrets is not None and not isinstance(secrets, list):
            raise InvalidResponseError("client: field 'secrets' must be a list")
        return cls(
            client_id=r.text("client_id"),
            name=r.text("name"),
            is_public=r.flag("is_public"),
            grant_types=r.texts("grant_types"),
            scopes=r.texts("scopes"),
            audiences=r.texts("audiences"),
            redirect_uris=r.texts("redirect_uris"),
            token_endpoint_auth_methods=r.texts("token_endpoint_auth_methods"),
            access_token_lifetime=r.opt_integer("access_token_lifetime"),
            rate_limit=r.opt_integer("rate_limit"),
            can_introspect=r.flag("can_introspect"),
            created_at=r.integer("created_at"),
            updated_at=r.integer("updated_at"),
            secrets=tuple(ClientSecretInfo.from_json(item) for item in secrets or ()),
            extra=r.extra(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientWithSecret:
    """A client just created or given a new secret: the secret is shown this once."""

    client: Client
    client_secret: str | None = field(repr=False)
    """``None`` for a public client."""

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, "client with secret")
        return cls(
            client=Client.from_json(r.raw("client")), client_secret=r.opt_text("client_secret")
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Introspection:
    """An RFC 7662 answer. Inactive tokens say nothing else, by design (§2.2)."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    exp: int | None = None
    iat: int | None = None
    jti: str | None = None
    iss: str | None = None
    token_type: str | None = None
    aud: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split()) if self.scope else ()

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, "introspection response")
        aud = r.raw("aud", required=False)
        if isinstance(aud, str):
            audience: tuple[str, ...] = (aud,)
        elif aud is None:
            audience = ()
        else:
            audience = r.texts("aud")
        return cls(
            active=r.flag("active"),
            scope=r.opt_text("scope"),
            client_id=r.opt_text("client_id"),
            sub=r.opt_text("sub"),
            exp=r.opt_integer("exp"),
            iat=r.opt_integer("iat"),
            jti=r.opt_text("jti"),
            iss=r.opt_text("iss"),
            token_type=r.opt_text("token_type"),
            aud=audience,
            extra=r.extra(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyToken:
    """A token of the server you migrate from, to import: its value or its SHA-256 hex.

    Only a keyed hash of it is stored; ``token`` stays out of ``repr``.
    """

    client_id: str
    expires_at: int
    token: str | None = field(default=None, repr=False)
    token_sha256: str | None = None
    subject: str | None = None
    scopes: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give the legacy token as token or as token_sha256, not both")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "client_id": self.client_id,
            "expires_at": self.expires_at,
            "scopes": list(self.scopes),
            "audience": list(self.audience),
        }
        for name in ("token", "token_sha256", "subject"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data
