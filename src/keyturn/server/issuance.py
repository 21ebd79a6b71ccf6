"""Turn a grant's decision into a signed, recorded access token.

The grant decides *what* (subject, scopes, audience, lifetime); this service
does the effects: build RFC 9068 claims, sign with the current key, record the
token by identifier and keyed hash (never in clear), and shape the response.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keyturn.keys.keyring import KeyRing
from keyturn.server.secrets import Hasher, generate_token_id
from keyturn.storage.records import TOKEN_KIND_ACCESS, Client, TokenRecord
from keyturn.storage.repository import Storage


@dataclass(frozen=True, slots=True)
class TokenDecision:
    """What a grant allows: pure data, no effects."""

    client: Client
    subject: str
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    grant_type: str
    lifetime: int
    family_id: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    record: TokenRecord

    def response(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


class TokenIssuer:
    def __init__(
        self,
        storage: Storage,
        keyring: KeyRing,
        hasher: Hasher,
        issuer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._keyring = keyring
        self._hasher = hasher
        self._issuer = issuer
        self._clock = clock

    async def issue_access_token(self, decision: TokenDecision) -> IssuedToken:
        now = int(self._clock())
        jti = generate_token_id()
        scope = " ".join(decision.scopes)
        expires_at = now + decision.lifetime
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": decision.subject,
            "aud": decision.audience[0] if len(decision.audience) == 1 else list(decision.audience),
            "client_id": decision.client.client_id,
            "iat": now,
            "exp": expires_at,
            "jti": jti,
        }
        if scope:
            claims["scope"] = scope
        token, kid = await self._keyring.sign(claims)
        record = TokenRecord(
            token_id=jti,
            token_hash=self._hasher.hash(token),
            kind=TOKEN_KIND_ACCESS,
            client_id=decision.client.client_id,
            subject=decision.subject,
            scope=scope,
            audience=decision.audience,
            grant_type=decision.grant_type,
            issued_at=now,
            expires_at=expires_at,
            family_id=decision.family_id,
            kid=kid,
        )
        await self._storage.record_token(record)
        return IssuedToken(token, decision.lifetime, scope, record)
