"""Idle, trickling and oversized connections on a real ``keyturn serve`` (issue 13, finding 5).

300 silent connections and 50 that send one header byte every half second
must not stop a normal client, and must be closed by the server once
``KEYTURN_HEADER_TIMEOUT`` has passed, returning its descriptors to where
they were. Also: a head over ``KEYTURN_MAX_HEADER_BYTES`` is 431, a body that
stalls is 408, a connection over ``KEYTURN_MAX_CONNECTIONS`` is 503, and the
admin API answers a huge declared body or a missing token without waiting for
the body (finding 4).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import LiveServer, start_server, stop_server

HEADER_TIMEOUT = 2.0
SLOW = {
    "KEYTURN_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "KEYTURN_BODY_TIMEOUT": "2",
    "KEYTURN_KEEPALIVE_TIMEOUT": "1",
    "KEYTURN_SIGN_PROCESSES": "0",
}
IDLE = 300
TRICKLING = 50
FD_TOLERANCE = 5
WAIT = 30.0  # upper bound for anything the server should do within a few seconds


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors() -> Iterator[None]:
    """This process (and the server it starts) holds 350+ sockets at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < IDLE + TRICKLING + 100:
        pytest.skip(f"the descriptor limit ({hard}) is too low for {IDLE + TRICKLING} sockets")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("slow")
    server = start_server(tmp, f"sqlite+aiosqlite:///{tmp / 'keyturn.db'}", extra_env=SLOW)
    yield server
    stop_server(server)


def open_fds(server: LiveServer) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def connect(server: LiveServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    return sock


def get_token(server: LiveServer, client: dict[str, str]) -> int:
    r = httpx2.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=WAIT,
    )
    return r.status_code


def wait_until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {WAIT} s: {what}")


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed: recv gives b'' (or a reset), never a timeout."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_idle_and_trickling_connections_are_closed_and_do_not_lock_out(
    slow_server: LiveServer,
) -> None:
    client = slow_server.create_client("--scope", "read")
    for _ in range(3):  # warm up: pool connections, keys, caches
        assert get_token(slow_server, client) == 200
    time.sleep(HEADER_TIMEOUT)  # the warm-up's keep-alive connections are gone
    baseline = open_fds(slow_server)

    idle = [connect(slow_server) for _ in range(IDLE)]
    trickling = [connect(slow_server) for _ in range(TRICKLING)]
    try:
        wait_until(
            lambda: open_fds(slow_server) >= baseline + IDLE + TRICKLING,
            "the server accepted every connection",
        )
        assert get_token(slow_server, client) == 200  # a normal client is still served

        # One byte per half second, for four times the deadline: never a whole head.
        head = b"POST /oauth/token HTTP/1.1\r\n"[: int(4 * HEADER_TIMEOUT / 0.5)]
        alive = list(trickling)
        for byte in head:
            if not alive:
                break
            for sock in list(alive):
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    alive.remove(sock)  # the server closed it
            time.sleep(0.5)
        assert not alive, f"{len(alive)} trickling connections outlived {len(head) / 2} s"

        wait_until(
            lambda: open_fds(slow_server) <= baseline + FD_TOLERANCE,
            f"descriptors back to {baseline} (+{FD_TOLERANCE})",
        )
        assert all(closed_by_server(sock) for sock in idle)
        assert get_token(slow_server, client) == 200
    finally:
        for sock in idle + trickling:
            sock.close()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    pairs = (line.split(": ", 1) for line in lines[1:] if ": " in line)
    headers = {name.lower(): value for name, value in pairs}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_an_oversized_head_is_431(slow_server: LiveServer) -> None:
    with connect(slow_server) as sock:
        sock.sendall(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(100):
                sock.sendall(b"X-Pad: " + b"p" * 1000 + b"\r\n")
        except OSError:
            pass  # closed after the answer
        status, headers, body = read_response(sock)
    assert status == 431
    assert headers["connection"] == "close"
    assert json.loads(body)["error"] == "invalid_request"


def test_a_stalled_body_is_408(slow_server: LiveServer) -> None:
    with connect(slow_server) as sock:
        sock.sendall(
            b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            b"grant_type=client_"
        )
        status, headers, body = read_response(sock)
        assert status == 408
        assert headers["connection"] == "close"
        assert json.loads(body)["error"] == "invalid_request"
        assert closed_by_server(sock)


def test_admin_refuses_a_declared_gigabyte_without_waiting(slow_server: LiveServer) -> None:
    for auth in (b"", b"Authorization: Bearer nope\r\n"):
        with connect(slow_server) as sock:
            sock.sendall(
                b"POST /admin/v1/tokens HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Type: "
                b"application/json\r\nContent-Length: 1073741824\r\n\r\n"
            )
            status, headers, body = read_response(sock)
            assert status == 413
            assert headers["connection"] == "close"
            assert json.loads(body)["error"] == "invalid_request"


def test_admin_refuses_no_token_before_the_body(slow_server: LiveServer) -> None:
    with connect(slow_server) as sock:
        sock.sendall(
            b"POST /admin/v1/clients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n{"
        )
        status, headers, body = read_response(sock)
        assert status == 401
        assert headers["www-authenticate"].startswith('Bearer realm="keyturn-admin"')
        assert json.loads(body)["error"] == "invalid_token"


def test_connections_over_the_cap_get_503(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}",
        extra_env={**SLOW, "KEYTURN_MAX_CONNECTIONS": "20"},
    )
    held: list[socket.socket] = []
    try:
        client = server.create_client("--scope", "read")
        time.sleep(HEADER_TIMEOUT)  # the start-up probe's connections are closed
        baseline = open_fds(server)
        held = [connect(server) for _ in range(20)]
        wait_until(lambda: open_fds(server) >= baseline + 20, "20 connections accepted")
        with connect(server) as extra:
            status, headers, body = read_response(extra)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert json.loads(body)["error"] == "invalid_request"
        # Once the idle ones time out, clients are served again.
        assert all(closed_by_server(sock) for sock in held)
        wait_until(lambda: get_token(server, client) == 200, "served after the idle ones left")
    finally:
        for sock in held:
            sock.close()
        stop_server(server)
