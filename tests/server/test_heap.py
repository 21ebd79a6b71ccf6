"""The start-up heap is frozen once the server has started, and only when asked.

Freezing changes the whole process's collector, so the freeze itself is
tested in a process of its own, never in the test runner's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keyturn.server import heap
from tests.server.conftest import make_settings, run_harness

FREEZE_IN_A_CHILD = textwrap.dedent(
    """
    import gc, weakref
    from keyturn.server.heap import freeze_startup_heap

    class Node:
        pass

    kept = [Node() for _ in range(100)]   # live: frozen
    lost = Node()
    lost.self = lost                      # a cycle, garbage once dropped
    gone = weakref.ref(lost)
    del lost
    assert gc.get_freeze_count() == 0
    frozen = freeze_startup_heap()
    assert gone() is None, "the garbage cycle was frozen, not collected"
    assert frozen == gc.get_freeze_count() > len(kept)
    gc.collect()
    assert gc.get_freeze_count() == frozen, "a collection thawed the frozen objects"
    print("ok")
    """
)


def test_freeze_collects_the_garbage_then_freezes_what_lives() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FREEZE_IN_A_CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("asked", [True, False])
def test_the_server_freezes_its_heap_once_started_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: bool
) -> None:
    freezes: list[int] = []
    monkeypatch.setattr(heap, "freeze_startup_heap", lambda: freezes.append(1) or 0)
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", gc_freeze=asked)
    for harness in run_harness(settings):
        assert freezes == ([1] if asked else [])  # at start-up, before any request
        assert harness.http.get("/healthz").status_code == 200
    assert freezes == ([1] if asked else [])  # once


def test_settings_leave_the_collector_alone_unless_told() -> None:
    assert make_settings(Path("/nonexistent"), "sqlite+aiosqlite:///x.db").gc_freeze is False
