"""Time, injected: the core never reads a global clock inside its logic.

Expiry is tracked on ``monotonic()`` (immune to wall-clock jumps); ``time()`` is
only used to stamp an absolute ``expires_at`` that survives a process restart.
``sleep`` lives here too so tests can drive back-off without sleeping
(see `keyturn.testing.FakeClock`).
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        # Imported here: anyio is a base dependency, but the core's modules stay light.
        import anyio

        await anyio.sleep(max(0.0, seconds))
