"""Request and response bodies of the admin API.

Every string and list in a request body is bounded (`keyturn.server.limits`,
shared with the CLI's path), so no admin call can store a 100 MiB scope; the
body as a whole is bounded before it is read (`admin/guard.py`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from keyturn.server import limits
from keyturn.server.issuance import IssuedToken
from keyturn.server.request_body import is_storable
from keyturn.storage.records import Client, TokenRecord

Id = Field(min_length=1, max_length=limits.CLIENT_ID)
Subject = Annotated[str, StringConstraints(min_length=1, max_length=limits.SUBJECT)]
Scope = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.SCOPE, pattern=limits.SCOPE_PATTERN),
]
Audience = Annotated[str, StringConstraints(min_length=1, max_length=limits.AUDIENCE)]
RedirectUri = Annotated[str, StringConstraints(min_length=1, max_length=limits.REDIRECT_URI)]
GrantType = Annotated[str, StringConstraints(min_length=1, max_length=limits.GRANT_TYPE)]
AuthMethod = Annotated[str, StringConstraints(min_length=1, max_length=limits.AUTH_METHOD)]
Scopes = Annotated[list[Scope], Field(max_length=limits.SCOPES)]
Audiences = Annotated[list[Audience], Field(max_length=limits.AUDIENCES)]
RedirectUris = Annotated[list[RedirectUri], Field(max_length=limits.REDIRECT_URIS)]
GrantTypes = Annotated[list[GrantType], Field(max_length=limits.GRANT_TYPES)]


def _unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return not is_storable(value)
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


class Strict(BaseModel):
    """Request bodies: unknown fields and type coercion (``0`` for ``false``) are errors,
    and so is NUL or a lone surrogate in any string (PostgreSQL text cannot hold NUL;
    no encoder writes a lone surrogate)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def storable_text(cls, data: Any) -> Any:
        if _unstorable(data):
            raise ValueError("strings must be valid Unicode text without NUL characters")
        return data


def _exactly_one_of(*names: str) -> ConfigDict:
    """Say in the JSON schema what the validator enforces: exactly one of ``names``."""
    return ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"oneOf": [{"required": [n]} for n in names]},
    )


class _OneOf(Strict):
    """A body that names its subject exactly one of two ways, ``ONE_OF``: enforced
    here, and said in the JSON schema by ``model_config = _exactly_one_of(*ONE_OF)``."""

    ONE_OF: ClassVar[tuple[str, str]]

    @model_validator(mode="after")
    def exactly_one(self) -> Self:
        first, second = self.ONE_OF
        if (getattr(self, first) is None) == (getattr(self, second) is None):
            raise ValueError(f"give exactly one of {first} and {second}")
        return self


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
    subject: Subject | None = None
    scopes: Scopes | None = None
    audience: Audiences | None = None
    lifetime: int | None = Field(default=None, gt=0, le=366 * 24 * 3600)
    grant_type: GrantType = "client_credentials"


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
    scopes: Scopes | None = None
    expires_at: int | None = Field(default=None, gt=0, lt=2**53)


class RevokeRequest(_OneOf):
    """Name the token by its value or by its identifier (``jti``), not both."""

    ONE_OF = ("token", "token_id")
    model_config = _exactly_one_of(*ONE_OF)

    token: str | None = Field(default=None, min_length=1, max_length=limits.TOKEN_VALUE)
    token_id: str | None = Field(default=None, min_length=1, max_length=limits.TOKEN_ID)


class RevokeAllRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"anyOf": [{"required": ["client_id"]}, {"required": ["subject"]}]},
    )
    client_id: str | None = Field(default=None, min_length=1, max_length=limits.CLIENT_ID)
    subject: Subject | None = None
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
    complete: bool


class ClientSecretOut(BaseModel):
    """A secret that works now, by label and dates; its value and hash are never shown."""

    label: Literal["current", "previous"]
    created_at: int | None = Field(
        description="When it was made; null for a secret set before Keyturn recorded this."
    )
    expires_at: int | None = Field(
        description="When it stops working: the end of a rotation's overlap; null for the "
        "current secret, which works until it is rotated."
    )


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
    secrets: list[ClientSecretOut] = Field(
        description="The secrets that work now: the current one and, during a rotation's "
        "overlap, the previous one. Empty for a public client."
    )

    @classmethod
    def of(cls, client: Client, now: float) -> ClientOut:
        return cls(**client.public_dict(now))


class ClientCreate(Strict):
    client_id: str | None = Field(
        default=None, min_length=1, max_length=limits.CLIENT_ID, pattern=r"^[A-Za-z0-9._~-]+$"
    )
    name: str = Field(default="", max_length=limits.NAME)
    is_public: bool = False
    grant_types: GrantTypes = Field(default_factory=lambda: ["client_credentials"])
    scopes: Scopes = Field(default_factory=list)
    audiences: Audiences = Field(default_factory=list)
    redirect_uris: RedirectUris = Field(default_factory=list)
    token_endpoint_auth_methods: list[AuthMethod] | None = Field(
        default=None, max_length=limits.AUTH_METHODS
    )
    access_token_lifetime: int | None = Field(default=None, gt=0, le=366 * 24 * 3600)
    rate_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    can_introspect: bool = False


class ClientUpdate(Strict):
    name: str | None = Field(default=None, max_length=limits.NAME)
    grant_types: GrantTypes | None = None
    scopes: Scopes | None = None
    audiences: Audiences | None = None
    redirect_uris: RedirectUris | None = None
    access_token_lifetime: int | None = Field(default=None, gt=0, le=366 * 24 * 3600)
    rate_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    can_introspect: bool | None = None


MAX_OVERLAP = 366 * 24 * 3600


class RotateSecretRequest(Strict):
    overlap: int | None = Field(
        default=None,
        ge=0,
        le=MAX_OVERLAP,
        description="Seconds the old secret keeps working beside the new one; 0 stops it "
        "at once. Default: KEYTURN_SECRET_ROTATION_OVERLAP.",
    )


class ClientCreatedOut(BaseModel):
    client: ClientOut
    client_secret: str | None = Field(description="Shown once; only its hash is kept.")


class LegacyTokenIn(_OneOf):
    """A token from the server you migrate from; only its keyed hash is stored."""

    ONE_OF = ("token", "token_sha256")
    model_config = _exactly_one_of(*ONE_OF)

    token: str | None = Field(default=None, min_length=1, max_length=limits.TOKEN_VALUE)
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    client_id: str = Id
    subject: Subject | None = None
    scopes: Scopes = Field(default_factory=list)
    audience: Audiences = Field(default_factory=list)
    expires_at: int = Field(gt=0, lt=2**53)


class ImportRequest(Strict):
    tokens: list[LegacyTokenIn] = Field(min_length=1, max_length=limits.IMPORT_BATCH)


class ImportedOut(BaseModel):
    imported: int
    token_ids: list[str]


class ReissueRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=limits.REFRESH_TOKEN)


class ReissuedOut(BaseModel):
    """A new ID token with a new access and refresh token (the old refresh token is spent)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str
    refresh_token: str
    id_token: str
