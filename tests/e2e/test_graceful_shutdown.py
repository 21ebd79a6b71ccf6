"""SIGTERM on a real ``keyturn serve``: drain, finish what is in flight, stop the helpers.

A balancer needs the process to say it is going (``/readyz`` 503) while it still
serves (``KEYTURN_SHUTDOWN_DRAIN``); a request whose body is still arriving when
the signal comes is answered, not cut; the signing helpers end with the server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.e2e

CC = "client_credentials"


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx2.TransportError, OSError):
            if check():
                return True
        time.sleep(0.05)
    return False


def refuses(server: LiveServer) -> bool:
    port = int(server.url.rsplit(":", 1)[1])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def server(tmp_path: Path, postgres_database_url: str) -> Iterator[Callable[[float], LiveServer]]:
    servers: list[LiveServer] = []

    def start(drain: float) -> LiveServer:
        live = start_server(
            tmp_path,
            postgres_database_url,
            extra_env={"KEYTURN_SHUTDOWN_DRAIN": str(drain), "KEYTURN_SIGN_PROCESSES": "1"},
        )
        servers.append(live)
        return live

    yield start
    for live in servers:
        if live.process.poll() is None:
            stop_server(live)


def test_sigterm_drains_then_stops_with_its_signing_helpers(
    server: Callable[[float], LiveServer],
) -> None:
    live = server(6)
    client = live.create_client("--name", "drain")
    auth = (client["client_id"], client["client_secret"])
    with httpx2.Client(timeout=10) as http:
        assert wait_until(lambda: http.get(live.url + "/readyz").status_code == 200, 30)
        helpers = children(live.process.pid)
        assert helpers, "the server started no signing helper"

        live.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: http.get(live.url + "/readyz").status_code == 503, 3)
        draining = http.get(live.url + "/readyz")
        assert draining.json()["status"] == "draining"
        assert draining.headers["retry-after"] == "1"
        # Still serving while the balancer takes it out: tokens, on a new connection too.
        with httpx2.Client(timeout=10) as fresh:
            r = fresh.post(live.token_url, data={"grant_type": CC}, auth=auth)
        assert r.status_code == 200, r.text
        assert live.process.poll() is None

    live.process.wait(timeout=30)
    assert live.process.returncode in (0, -signal.SIGTERM), live.log()
    assert wait_until(lambda: not any(alive(pid) for pid in helpers), 10), helpers


def test_sigterm_answers_a_request_whose_body_is_still_arriving(
    server: Callable[[float], LiveServer],
) -> None:
    live = server(0)
    client = live.create_client("--name", "inflight")
    port = int(live.url.rsplit(":", 1)[1])
    body = (
        f"grant_type={CC}&client_id={client['client_id']}&client_secret={client['client_secret']}"
    )
    head = (
        "POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body[:10].encode())
        time.sleep(0.2)  # the head is parsed: the request is in flight
        live.process.send_signal(signal.SIGTERM)
        # It stops accepting new connections, but waits for this one.
        assert wait_until(lambda: refuses(live), 10), live.log()
        assert live.process.poll() is None
        sock.sendall(body[10:].encode())
        answer = b""
        while b"access_token" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b'"access_token"' in answer
    live.process.wait(timeout=30)
