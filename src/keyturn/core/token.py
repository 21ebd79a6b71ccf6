"""The token a client holds: `OAuthToken`.

``expires_at`` is absolute (wall-clock epoch seconds) and is computed when the
response is received, so a token read back from a store still knows when it
dies. Inside a running process the manager tracks expiry on a monotonic clock
instead (see `keyturn.core.manager`). Fields a provider adds beyond RFC 6749
§5.1 are kept in ``extra`` and survive the JSON round trip.

Secrets (access, refresh and ID token) never appear in ``repr``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from keyturn.core.clock import Clock, SystemClock

__all__ = ["OAuthToken"]

_KNOWN = frozenset(
    {
        "access_token",
        "token_type",
        "expires_in",
        "expires_at",
        "refresh_token",
        "scope",
        "id_token",
        "id_token_claims",
    }
)


@dataclass(frozen=True, slots=True, repr=False, kw_only=True)
class OAuthToken:
    """An access token and what came with it (RFC 6749 §5.1)."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int | None = None
    expires_at: float | None = None
    refresh_token: str | None = None
    scope: str | None = None
    id_token: str | None = None
    id_token_claims: Mapping[str, Any] | None = None
    """The ID token's claims as validated when the SDK received it (OIDC Core
    §3.1.3.7); ``None`` when there is no ID token. Saved with the token, so a
    token read back from a store still has them."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.access_token, str) or not self.access_token:
            raise ValueError("access_token must be a non-empty string")
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        if self.id_token_claims is not None:
            object.__setattr__(
                self, "id_token_claims", MappingProxyType(dict(self.id_token_claims))
            )

    # -- expiry -------------------------------------------------------------

    def is_expired(self, leeway: float = 0.0, *, clock: Clock | None = None) -> bool:
        """True when the token expires within ``leeway`` seconds, by the wall clock.

        Wall-clock time, because ``expires_at`` is absolute and survives a
        restart: the question to ask of a token loaded from a database. A live
        `TokenManager` asks the same question with ``is_token_expired(leeway)``
        on its monotonic clock, and renews earlier (``is_refresh_due()``).

        A token with no known expiry (``expires_at`` is ``None``) is not
        expired; the token manager gives such tokens a default lifetime on
        receipt, so this only happens for tokens built by hand.
        """
        if self.expires_at is None:
            return False
        now = (clock or SystemClock()).time()
        return now >= self.expires_at - leeway

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split()) if self.scope else ()

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value (RFC 6750 §2.1 spells it ``Bearer``)."""
        kind = "Bearer" if self.token_type.lower() == "bearer" else self.token_type
        return f"{kind} {self.access_token}"

    def same_grant(self, other: OAuthToken | None) -> bool:
        """Whether ``other`` is this very token (same access and refresh token)."""
        return (
            other is not None
            and other.access_token == self.access_token
            and other.refresh_token == self.refresh_token
        )

    def clone_with(self, **changes: Any) -> OAuthToken:
        return replace(self, **changes)

    # -- serialisation --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data["access_token"] = self.access_token
        data["token_type"] = self.token_type
        for name in ("expires_in", "expires_at", "refresh_token", "scope", "id_token"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.id_token_claims is not None:
            data["id_token_claims"] = dict(self.id_token_claims)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OAuthToken:
        """Rebuild a token written by `to_dict` (a store's copy, not a provider response)."""
        expires_in = data.get("expires_in")
        expires_at = data.get("expires_at")
        return cls(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type") or "Bearer"),
            expires_in=int(expires_in) if expires_in is not None else None,
            expires_at=float(expires_at) if expires_at is not None else None,
            refresh_token=_opt_str(data.get("refresh_token")),
            scope=_opt_str(data.get("scope")),
            id_token=_opt_str(data.get("id_token")),
            id_token_claims=claims
            if isinstance(claims := data.get("id_token_claims"), Mapping)
            else None,
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> OAuthToken:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a stored token must be a JSON object")
        return cls.from_dict(data)

    def __repr__(self) -> str:
        return (
            f"OAuthToken(token_type={self.token_type!r}, expires_at={self.expires_at!r}, "
            f"scope={self.scope!r}, refresh_token={'<set>' if self.refresh_token else None}, "
            f"id_token={'<set>' if self.id_token else None})"
        )

    __str__ = __repr__


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
