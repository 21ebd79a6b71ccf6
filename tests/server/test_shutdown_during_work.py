"""Shutting down while background tasks are inside a database call does not hang.

Shutdown cancels the purge, deny-list and probe loops; a cancellation landing
inside an aiosqlite call once left the engine's ``dispose()`` waiting for ever.
A purge loop with no pause between rounds makes that landing likely.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.server.conftest import make_settings, run_harness


@pytest.mark.parametrize("db", ["sqlite"])
def test_stopping_mid_purge_finishes(tmp_path: Path, db: str) -> None:
    finished: list[int] = []

    def cycles() -> None:
        for i in range(12):
            settings = make_settings(
                tmp_path / str(i),
                f"sqlite+aiosqlite:///{tmp_path / f'k{i}.db'}",
                purge_interval=0.001,
            )
            for harness in run_harness(settings):
                harness.http.get("/healthz")
                time.sleep(0.02)  # purges run meanwhile; the next exit lands in one
            finished.append(i)

    worker = threading.Thread(target=cycles, daemon=True)
    worker.start()
    worker.join(timeout=90)
    assert not worker.is_alive(), f"shutdown hung after {len(finished)} clean stops"
