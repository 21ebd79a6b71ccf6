"""What introspection remembers of an access token whose signature it checked
(`keyturn.core.verified`).

A remembered token skips the parse of its ``jti`` and its signature check, and
nothing else: its record is read from the database on every introspection, so
liveness (revocation, expiry, an update of scope or ``exp``) stays exact across
every process, and the record must still carry the keyed hash of this token's
signing input and the ``kid`` it was verified with; the key must still be *the*
key the key ring holds for that ``kid`` (the same object), else it is verified
again.
"""

from __future__ import annotations

from typing import NamedTuple

from keyturn.core.jose import Signer
from keyturn.core.verified import VerifiedTokens

__all__ = ["Verified", "VerifiedTokens"]


class Verified(NamedTuple):
    jti: str
    kid: str
    signer: Signer
