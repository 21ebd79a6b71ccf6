"""Plain records that storage returns and grants reason about (no ORM objects leak)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_REFRESH_TOKEN = "refresh_token"
GRANT_MIGRATION_TOKEN = "migration_token"
GRANT_AUTHORIZATION_CODE = "authorization_code"
GRANT_PASSWORD = "password"
AUTH_BASIC = "client_secret_basic"
AUTH_POST = "client_secret_post"
AUTH_NONE = "none"
TOKEN_KIND_ACCESS = "access_token"
TOKEN_KIND_REFRESH = "refresh_token"
TOKEN_KIND_LEGACY = "legacy"
"""A token imported from another server, exchangeable once by the migration grant."""


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str = ""
    secret_hash: str | None = field(default=None, repr=False)
    is_public: bool = False
    grant_types: tuple[str, ...] = (GRANT_CLIENT_CREDENTIALS,)
    scopes: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    auth_methods: tuple[str, ...] = (AUTH_BASIC, AUTH_POST)
    access_token_lifetime: int | None = None
    rate_limit: int | None = None
    can_introspect: bool = False
    allow_plain_pkce: bool = False
    created_at: int = 0
    updated_at: int = 0
    secret_created_at: int | None = None
    """When the current secret was made; None if before migration 0009 recorded it."""
    previous_secret_hash: str | None = field(default=None, repr=False)
    """The secret before the current one, accepted until ``previous_secret_expires_at``."""
    previous_secret_created_at: int | None = None
    previous_secret_expires_at: int | None = None

    def with_changes(self, **changes: Any) -> Client:
        return replace(self, **changes)

    def previous_secret_live(self, now: float) -> bool:
        """Whether the secret before the current one is still accepted at ``now``."""
        return (
            self.previous_secret_hash is not None
            and self.previous_secret_expires_at is not None
            and now < self.previous_secret_expires_at
        )

    def secrets_dict(self, now: float) -> list[dict[str, Any]]:
        """The secrets that work at ``now``, by label and dates: never a value or hash."""
        if self.secret_hash is None:
            return []
        shown = [{"label": "current", "created_at": self.secret_created_at, "expires_at": None}]
        if self.previous_secret_live(now):
            shown.append(
                {
                    "label": "previous",
                    "created_at": self.previous_secret_created_at,
                    "expires_at": self.previous_secret_expires_at,
                }
            )
        return shown

    def public_dict(self, now: float | None = None) -> dict[str, Any]:
        """Everything about the client except its secrets' values and hashes."""
        return {
            "client_id": self.client_id,
            "name": self.name,
            "is_public": self.is_public,
            "grant_types": list(self.grant_types),
            "scopes": list(self.scopes),
            "audiences": list(self.audiences),
            "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_methods": list(self.auth_methods),
            "access_token_lifetime": self.access_token_lifetime,
            "rate_limit": self.rate_limit,
            "can_introspect": self.can_introspect,
            "allow_plain_pkce": self.allow_plain_pkce,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "secrets": self.secrets_dict(time.time() if now is None else now),
        }


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: str
    token_hash: str = field(repr=False)
    kind: str
    client_id: str
    subject: str | None
    scope: str
    audience: tuple[str, ...]
    grant_type: str
    issued_at: int
    expires_at: int
    revoked_at: int | None = None
    family_id: str | None = None
    parent_id: str | None = None
    kid: str | None = None
    auth_time: int | None = None

    def is_active(self, now: float) -> bool:
        return self.revoked_at is None and self.expires_at > now

    def admin_dict(self, now: float) -> dict[str, Any]:
        """The record as the admin API and CLI show it (no hash)."""
        return {
            "token_id": self.token_id,
            "kind": self.kind,
            "client_id": self.client_id,
            "subject": self.subject,
            "scopes": self.scope.split() if self.scope else [],
            "audience": list(self.audience),
            "grant_type": self.grant_type,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "family_id": self.family_id,
            "active": self.is_active(now),
        }


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    kid: str
    alg: str
    private_key: str = field(repr=False)
    public_jwk: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0
    activates_at: int = 0


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    username: str
    password_hash: str = field(repr=False)
    name: str = ""
    created_at: int = 0
    updated_at: int = 0

    def public_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class Session:
    session_hash: str = field(repr=False)
    user_id: str
    auth_time: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    code_id: str
    code_hash: str = field(repr=False)
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    auth_time: int
    issued_at: int
    expires_at: int
    family_id: str
    consumed_at: int | None = None
