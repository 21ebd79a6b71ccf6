"""Soak: a minute of mixed grants against a real ``keyturn serve``; RSS and descriptors stay flat.

    python benchmarks/soak.py                 # 60 s on SQLite
    python benchmarks/soak.py --postgres      # then 60 s on PostgreSQL too
    python benchmarks/soak.py --seconds 300 --concurrency 16

Each worker thread (``--concurrency``, default 8) loops over a fixed mix on
127.0.0.1: client_credentials (about 55 %), refresh_token rotation of a grant
obtained with the password grant (20 %; a new grant every `GRANT_REFRESHES`
refreshes, the old one revoked), introspection of a recent token (15 %),
revocation of a recent access token (10 %). Password grants are kept rare on
purpose: each argon2id verification holds 64 MiB while it runs, so frequent
ones make RSS samples jump by 64 MiB steps that say nothing about a leak
(the maximum still shows them). After a warm-up (``--warmup``, default 5 s, not
sampled) the server process's VmRSS (/proc/PID/status) and open descriptors
(/proc/PID/fd) are sampled every second. Printed: the median of the first and
of the last 10 samples, their ratio, the maximum; also the answers by status.

Exit status 1 when RSS grows more than ``--max-rss-growth`` (default 20 %)
or descriptors by more than ``--max-fd-growth`` (default 5) between the two
windows, or when any answer is a 5xx or no answer at all.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from run import free_port, log, reset_postgres, stop_process

KEYTURN = [sys.executable, "-m", "keyturn.cli"]
SOAK_PG = "postgresql://postgres@127.0.0.1:5432/keyturn_soak"
WINDOW = 10  # samples (seconds) compared at each end
GRANT_REFRESHES = 500


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path

    def cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*KEYTURN, *args], env=self.env, input=stdin, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"keyturn {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout


def start(tmp: Path, database_url: str) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(
        KEYTURN_DATA_DIR=str(tmp),
        KEYTURN_DATABASE_URL=database_url,
        KEYTURN_PEPPER=secrets.token_hex(32),
        KEYTURN_ISSUER=url,
    )
    log_path = tmp / "server.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [*KEYTURN, "serve", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(url, process, env, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"keyturn serve exited early: {log_path.read_text()[-2000:]}")
        with suppress(httpx2.TransportError):
            if httpx2.get(url + "/.well-known/oauth-authorization-server", timeout=1).is_success:
                return server
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError("keyturn serve did not become ready in 60 s")


def sample(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, open descriptors) of ``pid``."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)

    def count(self, op: str, status: int | str, body: str = "") -> None:
        with self.lock:
            self.answers[f"{op} {status}"] += 1
            if not isinstance(status, int) or status >= 500:
                self.bad.append(f"{op} {status} {body[:200]}")


def worker(
    server: Server,
    cc: tuple[str, str],
    user: tuple[str, str],
    tally: Tally,
    stop: threading.Event,
    seed: int,
) -> None:
    rng = random.Random(seed)
    recent: list[str] = []
    refresh: str | None = None
    refreshes = 0
    token_url = server.url + "/oauth/token"
    with httpx2.Client(timeout=10) as http:

        def call(op: str, url: str, data: dict[str, str]) -> httpx2.Response | None:
            try:
                r = http.post(url, data=data, auth=cc)
            except httpx2.TransportError as exc:
                tally.count(op, type(exc).__name__)
                return None
            tally.count(op, r.status_code, r.text)
            return r

        while not stop.is_set():
            roll = rng.random()
            if roll < 0.55 or not recent:
                r = call("client_credentials", token_url, {"grant_type": "client_credentials"})
                if r is not None and r.status_code == 200:
                    recent = [*recent[-31:], r.json()["access_token"]]
            elif roll < 0.75:
                if refresh is None or refreshes >= GRANT_REFRESHES:
                    if refresh is not None:  # retire the old grant: its whole family goes
                        call("revoke", server.url + "/oauth/revoke", {"token": refresh})
                    r = call(
                        "password",
                        token_url,
                        {"grant_type": "password", "username": user[0], "password": user[1]},
                    )
                    refreshes = 0
                else:
                    r = call("refresh_token", token_url,
                             {"grant_type": "refresh_token", "refresh_token": refresh})  # fmt: skip
                    refreshes += 1
                refresh = r.json()["refresh_token"] if r is not None and r.is_success else None
            elif roll < 0.90:
                call("introspect", server.url + "/oauth/introspect",
                     {"token": rng.choice(recent)})  # fmt: skip
            else:
                token = recent.pop(rng.randrange(len(recent)))
                call("revoke", server.url + "/oauth/revoke", {"token": token})


def soak(label: str, database_url: str, args: argparse.Namespace, tmp: Path) -> bool:
    server = start(tmp, database_url)
    try:
        client = json.loads(server.cli(
            "clients", "create", "--json", "--name", "soak", "--rate-limit", "0",
            "--grant", "client_credentials", "--grant", "password", "--grant", "refresh_token",
        ))  # fmt: skip
        cc = (client["client_id"], client["client_secret"])
        user = ("soak", secrets.token_urlsafe(16))
        server.cli("users", "create", user[0], "--password-stdin", stdin=user[1] + "\n")
        first = httpx2.post(
            server.url + "/oauth/token", data={"grant_type": "client_credentials"}, auth=cc
        )
        if first.status_code != 200:
            tail = server.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{label}: a token request answered {first.status_code}\n{tail}")
        tally, stop = Tally(), threading.Event()
        threads = [
            threading.Thread(target=worker, args=(server, cc, user, tally, stop, i), daemon=True)
            for i in range(args.concurrency)
        ]
        for t in threads:
            t.start()
        log(f"{label}: warm-up {args.warmup:.0f} s, then {args.seconds:.0f} s sampled")
        time.sleep(args.warmup)
        samples: list[tuple[int, int]] = []
        begin = time.monotonic()
        for i in range(int(args.seconds)):
            time.sleep(max(0.0, begin + i + 1 - time.monotonic()))
            samples.append(sample(server.process.pid))
        stop.set()
        for t in threads:
            t.join(timeout=15)
        helpers = ""
        with suppress(OSError):
            with open(f"/proc/{server.process.pid}/task/{server.process.pid}/children") as f:
                kids = [int(p) for p in f.read().split()]
            helpers = f", signing helpers' RSS {sum(sample(k)[0] for k in kids) / 1024:.0f} MiB"
    finally:
        stop_process(server.process)
    server_log = server.log_path.read_text(errors="replace")

    n = min(WINDOW, len(samples) // 2)
    rss = [s[0] / 1024 for s in samples]
    fds = [s[1] for s in samples]
    rss_first, rss_last = statistics.median(rss[:n]), statistics.median(rss[-n:])
    fd_first, fd_last = statistics.median(fds[:n]), statistics.median(fds[-n:])
    total = sum(tally.answers.values())
    print(f"\n## {label}: {args.seconds:.0f} s, concurrency {args.concurrency}")
    print(f"requests: {total} ({total / (args.seconds + args.warmup):.0f}/s)")
    for key, count in sorted(tally.answers.items()):
        print(f"  {key}: {count}")
    print(
        f"RSS MiB: first {n} s median {rss_first:.1f}, last {n} s median {rss_last:.1f}, "
        f"ratio {rss_last / rss_first:.3f}, max {max(rss):.1f}{helpers}"
    )
    print(
        f"open fds: first {n} s median {fd_first:.0f}, last {n} s median {fd_last:.0f}, "
        f"growth {fd_last - fd_first:+.0f}, max {max(fds)}"
    )
    ok = True
    if rss_last > rss_first * (1 + args.max_rss_growth):
        print(f"FAIL: RSS grew more than {args.max_rss_growth:.0%}")
        ok = False
    if fd_last - fd_first > args.max_fd_growth:
        print(f"FAIL: descriptors grew by more than {args.max_fd_growth}")
        ok = False
    if tally.bad:
        print(f"FAIL: {len(tally.bad)} answers were 5xx or none, e.g. {tally.bad[:3]}")
        print(f"server log ends:\n{server_log[-3000:]}")
        ok = False
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--postgres", action="store_true", help="also soak on PostgreSQL")
    parser.add_argument("--postgres-url", default=os.environ.get("KEYTURN_SOAK_PG", SOAK_PG),
                        help="dropped and recreated (default: %(default)s)")  # fmt: skip
    parser.add_argument("--max-rss-growth", type=float, default=0.20)
    parser.add_argument("--max-fd-growth", type=int, default=5)
    args = parser.parse_args(argv)
    if args.seconds < 2 * WINDOW:
        parser.error(f"--seconds must be at least {2 * WINDOW}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="keyturn-soak-") as tmp:
        runs: list[tuple[str, Callable[[], str]]] = [
            ("SQLite", lambda: f"sqlite+aiosqlite:///{Path(tmp) / 'sqlite' / 'keyturn.db'}")
        ]
        if args.postgres:
            runs.append(("PostgreSQL", lambda: args.postgres_url))
        for label, url in runs:
            where = Path(tmp) / label.lower()
            where.mkdir()
            if label == "PostgreSQL":
                why = reset_postgres(args.postgres_url)
                if why is not None:
                    print(f"\n## PostgreSQL: not measured: {why}")
                    ok = False
                    continue
            ok = soak(label, url(), args, where) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
