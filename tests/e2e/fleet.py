"""Fleet harness: N real ``keyturn serve`` processes behind the shipped HAProxy config.

The processes share one PostgreSQL database and the shared Redis (under a
private key prefix); HAProxy runs ``deploy/haproxy.cfg`` unchanged, its
addresses given through the environment as an operator's /etc/default/haproxy
would. Each backend keeps its port across restarts, as a systemd instance does.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from tests.e2e.conftest import KEYTURN, LiveServer, free_port

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
START_TIMEOUT = 60.0


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.path.exists(p)), None
    )


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until ``check()`` held, or None if it never did within ``timeout``."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(httpx2.TransportError, OSError):
            if check():
                return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            return None
        time.sleep(interval)


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in (int(p) for p in f.read().split()):
                    found += [child, *children(child)]
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@dataclass
class Backend:
    """One Keyturn process on a fixed loopback port (restartable, like keyturn@PORT)."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    helpers: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def live(self) -> LiveServer:
        assert self.process is not None
        return LiveServer(self.url, self.env, self.process, self.log_path)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*KEYTURN, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            return httpx2.get(self.url + "/readyz", timeout=1).status_code == 200

        if wait_for(ready, START_TIMEOUT, 0.1) is None:
            self.stop()
            raise RuntimeError(f"{self.name} did not become ready:\n{self.log()}")
        self.helpers = children(process.pid)

    def terminate(self) -> None:
        """SIGTERM, as systemd (KillMode=mixed) or an orchestrator sends it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the server and, after it, the signing helpers it had started."""
        assert self.process is not None
        helpers = children(self.process.pid)
        self.process.kill()
        self.process.wait(timeout=10)
        for pid in helpers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*KEYTURN, *args], env=self.env, capture_output=True, text=True, timeout=60
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Balancer:
    """``haproxy -f deploy/haproxy.cfg -db``, with its runtime API socket."""

    binary: str
    port: int
    backends: list[Backend]
    socket_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
        env["KEYTURN_LB_BIND"] = f"127.0.0.1:{self.port}"
        env["KEYTURN_LB_SOCKET"] = str(self.socket_path)
        for i, backend in enumerate(self.backends, 1):
            env[f"KEYTURN_BACKEND_{i}"] = f"127.0.0.1:{backend.port}"
        return env

    def check_config(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "-c", "-f", str(HAPROXY_CFG)],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=30,
        )

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-f", str(HAPROXY_CFG), "-db"],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process

        def all_up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"HAProxy exited:\n{self.log()}")
            return all(state == "UP" for state in self.states().values())

        if wait_for(all_up, 30) is None:
            self.stop()
            raise RuntimeError(f"HAProxy did not see its servers up:\n{self.log()}")

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            out = b""
            while chunk := sock.recv(65536):
                out += chunk
        return out.decode()

    def states(self) -> dict[str, str]:
        """Each server's check status, e.g. ``{"k1": "UP", "k2": "DOWN"}``."""
        rows = csv.DictReader(io.StringIO(self.command("show stat").lstrip("# ")))
        return {
            row["svname"]: row["status"].split()[0]
            for row in rows
            if row["pxname"] == "keyturn" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_state(self, server: str, state: str, timeout: float = 30) -> None:
        if wait_for(lambda: self.states().get(server) == state, timeout) is None:
            raise AssertionError(f"{server} never {state}: {self.states()}\n{self.log()[-2000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def make_fleet(
    tmp: Path, binary: str, backend_env: dict[str, str], count: int = 2
) -> tuple[Balancer, list[Backend]]:
    """Ports and environments of ``count`` backends and the balancer (nothing started)."""
    lb_port = free_port()
    issuer = f"http://127.0.0.1:{lb_port}"  # the public address: the balancer's
    backends = []
    for i in range(1, count + 1):
        data = tmp / f"k{i}"
        data.mkdir()
        env = {**backend_env, "KEYTURN_DATA_DIR": str(data), "KEYTURN_ISSUER": issuer}
        backends.append(Backend(f"k{i}", free_port(), env, tmp / f"k{i}.log"))
    balancer = Balancer(binary, lb_port, backends, tmp / "haproxy.sock", tmp / "haproxy.log")
    return balancer, backends
