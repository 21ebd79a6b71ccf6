"""Request and response bodies of the admin API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keyturn.server.issuance import IssuedToken
from keyturn.storage.records import Client, TokenRecord

Id = Field(min_length=1, max_length=128)
ScopeList = list[str]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class Strict(BaseModel):
    """Request bodies: unknown fields and type coercion (``0`` for ``false``) are errors,
    and so is NUL in any string (PostgreSQL text cannot hold it)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def no_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("strings must not contain NUL characters")
        return data


def _exactly_one_of(*names: str) -> ConfigDict:
    """Say in the JSON schema what the validator enforces: exactly one of ``names``."""
    return ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"oneOf": [{"required": [n]} for n in names]},
    )


class ErrorBody(BaseModel):
    error: str
    error_description: str | None = None


class TokenOut(BaseModel):
    token_id: str
    kind: str
    client_id: str
    subject: str | None
    scopes: list[str]
    audience: list[str]
    grant_type: str
    issued_at: int
    expires_at: int
    revoked_at: int | None
    family_id: str | None
    active: bool

    @classmethod
    def of(cls, record: TokenRecord, now: float) -> TokenOut:
        return cls(**record.admin_dict(now))


class TokenPageOut(BaseModel):
    items: list[TokenOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )


class TokenCreate(Strict):
    client_id: str = Id
    subject: str | None = Field(default=None, min_length=1, max_length=255)
    scopes: list[str] | None = Field(default=None, max_length=100)
    audience: list[str] | None = Field(default=None, max_length=20)
    lifetime: int | None = Field(default=None, gt=0, le=366 * 24 * 3600)
    grant_type: str = Field(default="client_credentials", min_length=1, max_length=64)


class IssuedOut(BaseModel):
    """A newly issued token: the value is shown here once and never again."""

    token: TokenOut
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str

    @classmethod
    def of(cls, issued: IssuedToken, now: float) -> IssuedOut:
        return cls(
            token=TokenOut.of(issued.record, now),
            access_token=issued.access_token,
            expires_in=issued.expires_in,
            scope=issued.scope,
        )


class TokenUpdate(Strict):
    scopes: list[str] | None = Field(default=None, max_length=100)
    expires_at: int | None = Field(default=None, gt=0, lt=2**53)


class RevokeRequest(Strict):
    """Name the token by its value or by its identifier (``jti``), not both."""

    model_config = _exactly_one_of("token", "token_id")

    token: str | None = Field(default=None, min_length=1, max_length=8192)
    token_id: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def exactly_one(self) -> RevokeRequest:
        if (self.token is None) == (self.token_id is None):
            raise ValueError("give exactly one of token and token_id")
        return self


class RevokeAllRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"anyOf": [{"required": ["client_id"]}, {"required": ["subject"]}]},
    )
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    subject: str | None = Field(default=None, min_length=1, max_length=255)
    access_tokens_only: bool = Field(
        default=False, description="Keep refresh tokens (Square's revoke_only_access_token)."
    )

    @model_validator(mode="after")
    def at_least_one(self) -> RevokeAllRequest:
        if self.client_id is None and self.subject is None:
            raise ValueError("give a client_id, a subject or both")
        return self


class RevokedOut(BaseModel):
    revoked: int
    token_ids: list[str]


class PurgedOut(BaseModel):
    purged: int


class ClientOut(BaseModel):
    client_id: str
    name: str
    is_public: bool
    grant_types: list[str]
    scopes: list[str]
    audiences: list[str]
    redirect_uris: list[str]
    token_endpoint_auth_methods: list[str]
    access_token_lifetime: int | None
    rate_limit: int | None
    can_introspect: bool
    created_at: int
    updated_at: int

    @classmethod
    def of(cls, client: Client) -> ClientOut:
        return cls(**client.public_dict())


class ClientCreate(Strict):
    client_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._~-]+$"
    )
    name: str = Field(default="", max_length=200)
    is_public: bool = False
    grant_types: list[str] = Field(default_factory=lambda: ["client_credentials"], max_length=10)
    scopes: list[str] = Field(default_factory=list, max_length=100)
    audiences: list[str] = Field(default_factory=list, max_length=20)
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    token_endpoint_auth_methods: list[str] | None = Field(default=None, max_length=3)
    access_token_lifetime: int | None = Field(default=None, gt=0, le=366 * 24 * 3600)
    rate_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    can_introspect: bool = False


class ClientUpdate(Strict):
    name: str | None = Field(default=None, max_length=200)
    grant_types: list[str] | None = Field(default=None, max_length=10)
    scopes: list[str] | None = Field(default=None, max_length=100)
    audiences: list[str] | None = Field(default=None, max_length=20)
    redirect_uris: list[str] | None = Field(default=None, max_length=20)
    access_token_lifetime: int | None = Field(default=None, gt=0, le=366 * 24 * 3600)
    rate_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    can_introspect: bool | None = None


class ClientCreatedOut(BaseModel):
    client: ClientOut
    client_secret: str | None = Field(description="Shown once; only its hash is kept.")


class LegacyTokenIn(Strict):
    """A token from the server you migrate from; only its keyed hash is stored."""

    model_config = _exactly_one_of("token", "token_sha256")

    token: str | None = Field(default=None, min_length=1, max_length=8192)
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    client_id: str = Id
    subject: str | None = Field(default=None, min_length=1, max_length=255)
    scopes: list[str] = Field(default_factory=list, max_length=100)
    audience: list[str] = Field(default_factory=list, max_length=20)
    expires_at: int = Field(gt=0, lt=2**53)

    @model_validator(mode="after")
    def exactly_one(self) -> LegacyTokenIn:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token and token_sha256")
        return self


class ImportRequest(Strict):
    tokens: list[LegacyTokenIn] = Field(min_length=1, max_length=1000)


class ImportedOut(BaseModel):
    imported: int
    token_ids: list[str]


class ReissueRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=512)


class ReissuedOut(BaseModel):
    """A new ID token with a new access and refresh token (the old refresh token is spent)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str
    refresh_token: str
    id_token: str
