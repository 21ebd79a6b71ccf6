"""What the guard remembers of a token it verified (`keyturn.core.verified`).

A hit skips parsing and the signature check only: `TokenVerifier` still
requires the very key object that verified it to be the current JWKS's for its
``kid``, checks the time claims against the clock, and asks revocation, on
every call.
"""

from __future__ import annotations

from typing import NamedTuple

from keyturn.core.jose import VerificationKey
from keyturn.core.verified import VerifiedTokens
from keyturn.guard.claims import AccessTokenClaims

__all__ = ["Verified", "VerifiedTokens"]


class Verified(NamedTuple):
    kid: str
    key: VerificationKey
    claims: AccessTokenClaims
