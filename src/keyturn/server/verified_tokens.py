"""A bounded memory of the access tokens whose signature introspection has checked.

A resource server that introspects on every call presents the same token
again and again for its whole life, and checking its signature (ES256 about
117 us, RS256 60 us, on the event loop) was the largest cost of introspection
after the database read. A remembered token skips that check and the parse of
its ``jti``, and nothing else:

- its record is read from the database on every introspection, so liveness
  (revocation, expiry, an update of scope or ``exp``) stays exact across every
  process, and the record must still carry the keyed hash of this token's
  signing input and the ``kid`` it was verified with;
- the key must still be *the* key the key ring holds for that ``kid`` (the
  same object): a key dropped or reloaded makes it a miss, verified again.

Only tokens whose signature passed are remembered, keyed by the whole token
string (as the guard's cache is: no digest, so no collision can stand in for
a signature). Least recently used tokens are forgotten first. It is used on
the event loop only, so it needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from keyturn.core.jose import Signer

__all__ = ["Verified", "VerifiedTokens"]

DEFAULT_SIZE = 4096
"""About 3 MB of tokens at most; a resource server's working set of live tokens."""


class Verified(NamedTuple):
    jti: str
    kid: str
    signer: Signer


class VerifiedTokens:
    """Up to ``size`` verified access tokens, least recently used forgotten first (0: none)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, Verified] = OrderedDict()

    def get(self, token: str) -> Verified | None:
        entry = self._entries.get(token)
        if entry is not None:
            self._entries.move_to_end(token)
        return entry

    def add(self, token: str, entry: Verified) -> None:
        if self._size <= 0:
            return
        self._entries[token] = entry
        self._entries.move_to_end(token)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
