"""A bounded memory of the tokens whose signature this verifier has checked.

A client reuses one access token for its whole life (the SDK does), so an API
sees the same token thousands of times, and parsing it and checking its
signature (about 90 µs for RS256, 300 µs for ES256) is nearly all of the
guard's cost. A remembered token skips only those two steps:

- the key that verified it must still be *the* key the current JWKS gives for
  its ``kid`` (the same object: a refetch that drops or replaces the key, or a
  stale JWKS being refreshed, makes it a miss and the token is verified again);
- its time claims (``exp``, ``iat``, ``nbf``) are checked against the clock on
  every use;
- revocation is asked on every use, as the verifier is configured.

Only tokens that passed every check are remembered, keyed by the whole token
string (no hash, so no collision can stand in for a signature). Least recently
used tokens are forgotten first; a lock keeps it safe across threads, and it is
never held across I/O.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

from keyturn.core.jose import VerificationKey
from keyturn.guard.claims import AccessTokenClaims

__all__ = ["Verified", "VerifiedTokens"]


class Verified(NamedTuple):
    kid: str
    key: VerificationKey
    claims: AccessTokenClaims


class VerifiedTokens:
    """Up to ``size`` verified tokens, least recently used forgotten first (0: none)."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("the verified-token cache size must be >= 0")
        self.size = size
        self._entries: OrderedDict[str, Verified] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Verified | None:
        if not self.size:
            return None
        with self._lock:
            entry = self._entries.get(token)
            if entry is not None:
                self._entries.move_to_end(token)
            return entry

    def put(self, token: str, entry: Verified) -> None:
        if not self.size:
            return
        with self._lock:
            self._entries[token] = entry
            self._entries.move_to_end(token)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, token: str) -> None:
        with self._lock:
            self._entries.pop(token, None)
