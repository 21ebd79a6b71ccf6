"""What the guard remembers of a token it verified (`keyturn.core.verified`).

A hit skips parsing and the signature check only: `TokenVerifier` still
requires the very key object that verified it to be the current JWKS's for its
``kid``, checks the time claims against the clock, and asks revocation, on
every call.

Most hits are checked in two comparisons and one equality: the key set's
generation has not moved since (so the key is still the JWKS's own and no
refetch made it another), and the clock is inside ``[usable_from,
usable_until)``, the window the time claims (with the leeway) and the key set's
age leave the token. Anything else takes the full check, which decides, and
says why.
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
    generation: int  # the key cache's when verified
    usable_from: float  # the time claims' lower bound, leeway included
    usable_until: float  # exp plus leeway, or the key set's refetch time if earlier
