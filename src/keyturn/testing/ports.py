"""Loopback ports for the processes tests start, safe under pytest-xdist.

Used by `start_keyturn_server` and by Keyturn's own suite.

A test probes a port, then the server it starts binds it a moment later.
Ports come from below the kernel's ephemeral range (``ip_local_port_range``,
32768 and up by default), so an outgoing connection's local port never takes
one in between; and under xdist each worker draws only ports whose remainder
modulo the worker count is its own, so two workers never choose the same one.
(``bind(("127.0.0.1", 0))`` cannot be split that way: Linux hands out odd
ports to it.) The same holds for a "closed" port nothing should listen on.
"""

from __future__ import annotations

import os
import random
import socket

LOW, HIGH = 20_000, 32_000
"""Below the ephemeral range, above the well-known services' ports."""
_DRAW = random.Random()  # noqa: S311 - its own: a test that seeds `random` keeps ports apart


def _share() -> tuple[int, int]:
    """(this worker's index, the number of workers); (0, 1) without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), 1)
    index = int(worker[2:]) if worker.startswith("gw") else 0
    return index, count


def free_port() -> int:
    """A port free on 127.0.0.1 this instant, and only ever this worker's."""
    index, count = _share()
    for _ in range(1000):
        port = _DRAW.randrange(LOW + index, HIGH, count)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: try another
        return port
    raise RuntimeError(f"no free loopback port in {LOW}-{HIGH} for this worker")


closed_port = free_port
"""A port nothing listens on (probed free, then closed again)."""
