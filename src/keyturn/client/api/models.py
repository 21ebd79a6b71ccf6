"""Typed results of Keyturn's API: frozen dataclasses, read from JSON field by field.

Plain dataclasses rather than pydantic models, because the base install (the
SDK) must not pull pydantic in. Every field is checked as it is read, so a
server that sends something else fails with `InvalidResponseError` at the
call, not later as an ``AttributeError`` deep in the caller's code. Fields a
newer server adds land in ``extra`` instead of breaking older SDKs. Token
values and client secrets never appear in a ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar, Self, cast

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


# How a field is read, by its annotation (a string: this module postpones annotations);
# ``extra``, declared last, takes what is left.
_READERS: dict[str, Callable[[_Reader, str], Any]] = {
    "str": _Reader.text,
    "str | None": _Reader.opt_text,
    "int": _Reader.integer,
    "int | None": _Reader.opt_integer,
    "bool": _Reader.flag,
    "tuple[str, ...]": _Reader.texts,
    "Mapping[str, Any]": lambda r, _name: r.extra(),
}


class _Model:
    """``from_json`` for the models: every field read as its annotation says, in the order
    declared, so a model's fields are written once, in its class."""

    __slots__ = ()
    _what: ClassVar[str]
    """What the object is called in an `InvalidResponseError`."""

    @classmethod
    def from_json(cls, data: Any) -> Self:
        return cls._read(_Reader(data, cls._what))

    @classmethod
    def _read(cls, r: _Reader, **special: Callable[[], Any]) -> Self:
        """``special`` reads, at their place in the order, the fields no annotation says how to."""
        values: dict[str, Any] = {}
        for f in fields(cast(Any, cls)):
            read = special.get(f.name)
            values[f.name] = read() if read else _READERS[str(f.type)](r, f.name)
        return cast(Callable[..., Self], cls)(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class Token(_Model):
    """A token as the admin API shows it: what it is, never its value."""

    _what = "token"
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


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenPage(_Model):
    """One page of a token listing; ``next_cursor`` is ``None`` on the last page."""

    _what = "token page"
    items: tuple[Token, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, cls._what)
        items = r.raw("items")
        if not isinstance(items, list):
            raise InvalidResponseError("token page: field 'items' must be a list")
        return cls._read(r, items=lambda: tuple(Token.from_json(item) for item in items))


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedToken(_Model):
    """A token just minted (create, renew): the value is shown this once."""

    _what = "issued token"
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
        r = _Reader(data, cls._what)
        access_token = r.text("access_token")
        if not access_token:
            raise InvalidResponseError("issued token: field 'access_token' is empty")
        return cls._read(
            r, token=lambda: Token.from_json(r.raw("token")), access_token=lambda: access_token
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeResult(_Model):
    """How many tokens a revocation took with it (a refresh token takes its family)."""

    _what = "revocation result"
    revoked: int
    token_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult(_Model):
    """The identifiers given to imported legacy tokens, in the order sent."""

    _what = "import result"
    imported: int
    token_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSecretInfo(_Model):
    """A secret that works now, named by its label and dates (never its value)."""

    _what = "client secret"
    label: str
    """``current``, or ``previous`` during a rotation's overlap."""
    created_at: int | None
    """``None`` for a secret set before the server recorded when."""
    expires_at: int | None
    """When a previous secret stops working; ``None`` for the current one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Client(_Model):
    """A registered client, without its secret (only its hash is kept)."""

    _what = "client"
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
        r = _Reader(data, cls._what)
        secrets = r.raw("secrets", required=False)
        if secrets is not None and not isinstance(secrets, list):
            raise InvalidResponseError("client: field 'secrets' must be a list")
        return cls._read(
            r, secrets=lambda: tuple(ClientSecretInfo.from_json(item) for item in secrets or ())
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientWithSecret(_Model):
    """A client just created or given a new secret: the secret is shown this once."""

    _what = "client with secret"
    client: Client
    client_secret: str | None = field(repr=False)
    """``None`` for a public client."""

    @classmethod
    def from_json(cls, data: Any) -> Self:
        r = _Reader(data, cls._what)
        return cls._read(r, client=lambda: Client.from_json(r.raw("client")))


@dataclass(frozen=True, slots=True, kw_only=True)
class Introspection(_Model):
    """An RFC 7662 answer. Inactive tokens say nothing else, by design (§2.2)."""

    _what = "introspection response"
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
        r = _Reader(data, cls._what)
        aud = r.raw("aud", required=False)
        if isinstance(aud, str):
            audience: tuple[str, ...] = (aud,)
        elif aud is None:
            audience = ()
        else:
            audience = r.texts("aud")
        return cls._read(r, aud=lambda: audience)


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
