"""The issuer's public keys as cached state, with the refetch policy (sans-IO).

Keyturn rotates publish-then-sign: a new ``kid`` is in the JWKS before any
token carries it, so an unknown ``kid`` is the signal to refetch. Anyone can
put any ``kid`` in a token, though, so refetches are rate-limited: at most one
fetch attempt per ``min_refetch_interval`` seconds, whatever the reason, and a
flood of garbage kids costs the issuer at most one JWKS request per interval.
The set is also refetched when older than ``max_age``, so a key the issuer
withdrew stops verifying; if that refresh fails, the stale keys keep serving.

This class only records and decides; the verifier does the fetching.
"""

from __future__ import annotations

from keyturn.core.jose import VerificationKey

__all__ = ["KeyCache"]


class KeyCache:
    """Public keys by ``kid`` plus when they were fetched and when we may fetch again."""

    def __init__(self, *, max_age: float, min_refetch_interval: float) -> None:
        if max_age <= 0 or min_refetch_interval < 0:
            raise ValueError("max_age must be > 0 and min_refetch_interval >= 0")
        self.max_age = max_age
        self.min_refetch_interval = min_refetch_interval
        self._keys: dict[str, VerificationKey] = {}
        #: bumped on every successful install; waiters compare it to skip a fetch
        self.generation = 0
        self.last_failed = False
        self._loaded_at: float | None = None
        self._last_attempt: float | None = None
        self._in_flight = False

    def get(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def wants_refresh(self, kid: str, now: float) -> bool:
        """True when ``kid`` is unknown or the set is stale, and a fetch is due or running.

        A caller that arrives while a fetch runs must wait for it (under the
        verifier's lock) rather than fail on the half-loaded cache.
        """
        if kid in self._keys and not self._stale(now):
            return False
        return self._in_flight or self.may_fetch(now)

    def may_fetch(self, now: float) -> bool:
        last = self._last_attempt
        # A clock that went backwards must not freeze refetching forever.
        return last is None or now < last or now - last >= self.min_refetch_interval

    def retry_after(self, now: float) -> float:
        """Seconds until the next fetch attempt is allowed."""
        if self._last_attempt is None:
            return 0.0
        return max(0.0, self._last_attempt + self.min_refetch_interval - now)

    def begin_fetch(self, now: float) -> None:
        self._last_attempt = now
        self._in_flight = True

    def end_fetch(self) -> None:
        self._in_flight = False

    def install(self, keys: dict[str, VerificationKey], now: float) -> None:
        self._keys = dict(keys)
        self._loaded_at = now
        self.last_failed = False
        self.generation += 1

    def fetch_failed(self) -> None:
        self.last_failed = True

    @property
    def fresh_until(self) -> float:
        """When the installed set turns stale (due a refetch); -inf before the first."""
        if self._loaded_at is None:
            return float("-inf")
        return self._loaded_at + self.max_age

    def _stale(self, now: float) -> bool:
        return now >= self.fresh_until
