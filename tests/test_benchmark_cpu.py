"""benchmarks/run.py's CPU accounting, behind its "workers: the CPU ceiling" table.

No timing is asserted: a busy grandchild must show CPU in its grandparent's
tree, an idle tree none of it, and the ceiling is the arithmetic the report
states.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import load_script

RUN = Path(__file__).parents[1] / "benchmarks" / "run.py"
BURN = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass"
SLEEP = "import time; time.sleep(20)"


@pytest.fixture(scope="module")
def run() -> ModuleType:
    return load_script(RUN, "bench_run")


def parent_of(code: str) -> subprocess.Popen[bytes]:
    """A process whose child runs ``code`` (as a server's worker would)."""
    spawn = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {code!r}])"
    return subprocess.Popen([sys.executable, "-c", spawn], start_new_session=True)


def tree_ticks_over(run: ModuleType, process: subprocess.Popen[bytes]) -> int:
    time.sleep(0.5)  # the child is up
    before, _ = run._cpu_of(process.pid, run._proc_stats())
    time.sleep(1.0)
    after, _ = run._cpu_of(process.pid, run._proc_stats())
    return int(after - before)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc: no CPU is reported")
def test_cpu_of_counts_the_descendants_only(run: ModuleType) -> None:
    busy, idle = parent_of(BURN), parent_of(SLEEP)
    try:
        assert tree_ticks_over(run, busy) > 0  # the grandchild's loop, not the parent's
        assert tree_ticks_over(run, idle) <= 1  # this test's own CPU is not in it
    finally:
        for process in (busy, idle):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def test_the_ceiling_is_cores_over_cores_used(run: ModuleType) -> None:
    args = argparse.Namespace(algs=["ES256"])
    one = {"rps": 2000.0, "cpu_server_us": 450.0, "cpu_database_us": 100.0, "cpu_wrk_us": 50.0}
    two = {"rps": 3000.0, "cpu_server_us": 460.0, "cpu_database_us": 100.0, "cpu_wrk_us": 50.0}
    stats = {
        ("ES256", "keyturn-postgres", 64): one,
        ("ES256", "keyturn-postgres-w2", 64): two,
        ("ES256", "keyturn-sqlite", 64): {**one, "cpu_database_us": 999.0},
        ("ES256", "keyturn-sqlite-w2", 64): two,
    }
    lines = run.workers_ceiling(args, stats)
    cores = run.os.cpu_count() or 1
    postgres = next(line for line in lines if "| PostgreSQL |" in line)
    # 2,000 tokens/s x 600 us = 1.2 cores busy; SQLite's row ignores PostgreSQL's CPU.
    assert "| 450 | 100 | 50 | 1.20 |" in postgres
    assert run.fmt_ratio(cores / 1.2) in postgres
    assert postgres.endswith("| 1.50x |")
    sqlite = next(line for line in lines if "| SQLite |" in line)
    assert "| 450 | — | 50 | 1.00 |" in sqlite
    assert run.workers_ceiling(args, {}) == []
