"""Fault-injection harness: real processes that each test starts, breaks and stops.

Every fault test owns what it breaks, on its own loopback port, and never
touches the shared PostgreSQL (5432) or Redis (6379) the rest of the suite
uses:

* `PrivatePostgres` -- a throw-away cluster (``initdb``/``pg_ctl`` run as the
  ``postgres`` OS user), one per test module, that a test may stop and start
  again on the same port;
* `PrivateRedis` -- a ``redis-server`` a test may SIGKILL, SIGSTOP or restart
  with or without its data;
* `Load` -- bounded concurrent requests (by count and by time) that record
  every status code and every access token a client actually received;
* the real ``keyturn serve`` through tests/e2e's `start_server`/`stop_server`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import jwt as pyjwt
import pytest

from tests.e2e.conftest import LiveServer, free_port, start_server, stop_server

__all__ = [
    "CC",
    "LiveServer",
    "Load",
    "PrivatePostgres",
    "PrivateRedis",
    "free_port",
    "introspect_active",
    "jti_of",
    "kill9",
    "listed_token_ids",
    "start_server",
    "stop_server",
    "token_request",
    "wait_for",
]

CC = "client_credentials"
CLIENT_TIMEOUT = 10.0
"""No request of a fault test may take longer: a hang is a failure, not a wait."""


# -- PostgreSQL ------------------------------------------------------------------------
def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL's binaries (Debian layout), or None."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def _as_postgres(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of our own on 127.0.0.1:``port`` (trust auth, fsync off)."""

    bindir: Path
    root: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        done = _as_postgres(
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "--auth=trust",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=50"
        )
        done = _as_postgres(
            str(self.bindir / "pg_ctl"),
            "-D", str(self.data),
            "-l", str(self.root / "postgres.log"),
            "-o", options,
            "-w", "-t", "30",
            "start",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr + self.log()

    def stop(self, mode: str = "fast") -> None:
        done = _as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def create_database(self, name: str) -> str:
        done = subprocess.run(
            [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", name],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return self.url(name)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "postgres.log").read_text(errors="replace")
        return ""

    def teardown(self) -> None:
        """Stop the cluster whatever state it is in (by pg_ctl, then by PID), remove it."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.stop("immediate")
            pid = self.pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A cluster for this test module alone; skipped only when initdb is not installed."""
    bindir = pg_bindir()
    if bindir is None or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL's initdb (/usr/lib/postgresql/*/bin) or runuser is not installed")
    root = Path(tempfile.mkdtemp(prefix="keyturn-faults-pg-"))
    shutil.chown(root, "postgres", "postgres")
    cluster = PrivatePostgres(bindir, root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.teardown()


# -- Redis -----------------------------------------------------------------------------
@dataclass
class PrivateRedis:
    """A ``redis-server`` of our own on 127.0.0.1:``port``, started and stopped by PID.

    ``persistent`` turns on the append-only file (fsync always), so a restart
    comes back with what it had; otherwise a restart comes back empty.
    """

    root: Path
    persistent: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
            if self.persistent
            else ["--appendonly", "no", "--save", ""]
        )
        with (self.root / "redis.log").open("ab") as out:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", str(self.root), *persistence],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.root / "redis.log").read_text()
            if self.ping():
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer PING within 10 s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        assert self.process.poll() is None
        os.kill(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)  # in case it was stopped
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def wipe(self) -> None:
        """Remove what a restart would load (for a restart without its data)."""
        for path in self.root.iterdir():
            if path.name != "redis.log":
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()


# -- the Keyturn server ----------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in (int(p) for p in f.read().split()):
                    found += [child, *_descendants(child)]
    return found


def kill9(server: LiveServer) -> None:
    """SIGKILL the server and, after it, any helper process it had started."""
    helpers = _descendants(server.process.pid)
    server.process.kill()
    server.process.wait(timeout=10)
    for pid in helpers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def token_request(
    http: httpx2.Client, server: LiveServer, auth: tuple[str, str]
) -> httpx2.Response:
    return http.post(server.token_url, data={"grant_type": CC}, auth=auth)


def jti_of(token: str) -> str:
    jti: str = pyjwt.decode(token, options={"verify_signature": False})["jti"]
    return jti


def introspect_active(server: LiveServer, tokens: list[str], auth: tuple[str, str]) -> int:
    """How many of ``tokens`` introspect ``active`` (``auth``: a can_introspect client)."""

    def active(chunk: list[str]) -> int:
        with httpx2.Client(timeout=CLIENT_TIMEOUT) as http:
            count = 0
            for token in chunk:
                r = http.post(server.url + "/oauth/introspect", data={"token": token}, auth=auth)
                assert r.status_code == 200, r.text
                count += r.json()["active"] is True
            return count

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return sum(pool.map(active, [tokens[i::4] for i in range(4)]))


def listed_token_ids(server: LiveServer, client_id: str) -> set[str]:
    """Every token id ``keyturn tokens list`` shows for the client (read from the database)."""
    ids: set[str] = set()
    cursor: str | None = None
    for _ in range(100):  # 20,000 tokens at most
        args = ["tokens", "list", "--client-id", client_id, "--limit", "200", "--json"]
        done = server.cli(*args, *(["--cursor", cursor] if cursor else []))
        assert done.returncode == 0, done.stderr
        page: dict[str, Any] = json.loads(done.stdout)
        ids.update(item["token_id"] for item in page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return ids
    raise AssertionError("more pages than a fault test can have made")


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> float | None:
    """Seconds until ``check()`` held, or None if it never did within ``timeout``."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            return None
        time.sleep(interval)


# -- load ------------------------------------------------------------------------------
@dataclass
class Outcome:
    started: float
    finished: float
    status: int | None  # None: no HTTP answer (connection refused, reset, timeout)
    error: str | None = None
    retry_after: str | None = None
    body: Any = None


class Load:
    """``workers`` threads sending ``request(http)`` until stopped, ``max_requests`` or ``seconds``.

    Every outcome is kept, in order of completion; ``received`` holds every
    access token of a 200 answer, the tokens a client really got.
    """

    def __init__(
        self,
        request: Callable[[httpx2.Client], httpx2.Response],
        *,
        workers: int = 8,
        max_requests: int = 20_000,
        seconds: float = 30.0,
    ) -> None:
        self._request = request
        self._workers = workers
        self._max = max_requests
        self._seconds = seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._threads: list[threading.Thread] = []
        self.outcomes: list[Outcome] = []
        self.received: list[str] = []

    def __enter__(self) -> Load:
        self._deadline = time.monotonic() + self._seconds
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self._workers)
        ]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=CLIENT_TIMEOUT + 5)
        assert not any(t.is_alive() for t in self._threads), "a load thread hung"

    def _take(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self._sent >= self._max or time.monotonic() > self._deadline:
                return False
            self._sent += 1
            return True

    def _run(self) -> None:
        with httpx2.Client(timeout=CLIENT_TIMEOUT) as http:
            while self._take():
                started = time.monotonic()
                try:
                    r = self._request(http)
                except httpx2.TransportError as exc:
                    outcome = Outcome(started, time.monotonic(), None, type(exc).__name__)
                    time.sleep(0.01)  # a dead server refuses at once: do not spin
                else:
                    try:
                        body: Any = r.json()
                    except ValueError:
                        body = r.text[:200]
                    outcome = Outcome(
                        started, time.monotonic(), r.status_code, None,
                        r.headers.get("retry-after"), body,
                    )  # fmt: skip
                with self._lock:
                    self.outcomes.append(outcome)
                    if (
                        outcome.status == 200
                        and isinstance(outcome.body, dict)
                        and "access_token" in outcome.body
                    ):
                        self.received.append(outcome.body["access_token"])

    def wait_received(self, count: int, timeout: float) -> None:
        wait_for(lambda: len(self.received) >= count, timeout, interval=0.02)

    def histogram(self, outcomes: list[Outcome] | None = None) -> Counter[str]:
        return Counter(
            str(o.status) if o.status is not None else o.error or "?"
            for o in (self.outcomes if outcomes is None else outcomes)
        )
