"""Client authentication timing: does a failed token request tell whether the client_id exists?

    python benchmarks/client_auth_timing.py [--n 400] [--known-clients 5]

Against a real ``keyturn serve`` on SQLite with the shipped client cache TTL
(5 s), one keep-alive connection on 127.0.0.1 sends client_credentials token
requests that all fail authentication (401):

* **unknown** -- a fresh random client_id per request, as an attacker probing
  ids would send (no cache can have seen it);
* **known, wrong secret** -- the ids of ``--known-clients`` registered
  clients in turn, each with a wrong secret.

The two kinds alternate in pairs whose order flips every pair, so drift hits
both alike. The server runs with ``KEYTURN_AUTH_FAILURE_LIMIT=0`` and
``KEYTURN_AUTH_FAILURE_ADDRESS_LIMIT=0`` (0 disables a lockout: the rate
limiters answer "allowed" for a limit <= 0), otherwise the known ids would lock
out after 10 failures, and this one address after 100, and answer 429 cheaply.
Printed: both medians, their ratio (target: within 10 %), and, for scale, the
median of a successful request.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlencode

from run import free_port, log, stop_process

KEYTURN = [sys.executable, "-m", "keyturn.cli"]


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=400, help="requests of each kind (>= 200)")
    parser.add_argument("--known-clients", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=100, help="pairs sent first, not counted")
    args = parser.parse_args(argv)
    if args.n < 200:
        parser.error("--n must be at least 200")

    with tempfile.TemporaryDirectory(prefix="keyturn-auth-timing-") as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
        env.update(
            KEYTURN_DATA_DIR=tmp,
            KEYTURN_DATABASE_URL=f"sqlite+aiosqlite:///{Path(tmp) / 'keyturn.db'}",
            KEYTURN_PEPPER=secrets.token_hex(32),
            KEYTURN_ISSUER=f"http://127.0.0.1:{port}",
            KEYTURN_AUTH_FAILURE_LIMIT="0",
            KEYTURN_AUTH_FAILURE_ADDRESS_LIMIT="0",
        )
        known: list[tuple[str, str]] = []
        for _ in range(args.known_clients):
            done = subprocess.run(
                [*KEYTURN, "clients", "create", "--json", "--rate-limit", "0"],
                env=env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"keyturn clients create failed: {done.stderr[-2000:]}")
            client = json.loads(done.stdout)
            known.append((client["client_id"], client["client_secret"]))
        with (Path(tmp) / "server.log").open("wb") as out:
            server = subprocess.Popen(
                [*KEYTURN, "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--log-level", "warning"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            return measure(port, known, args, server)
        finally:
            stop_process(server)


def measure(
    port: int,
    known: list[tuple[str, str]],
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
) -> int:
    deadline = time.monotonic() + 60
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while True:
        if server.poll() is not None or time.monotonic() > deadline:
            print("keyturn serve did not start")
            return 1
        with suppress(OSError, http.client.HTTPException):
            conn.request("GET", "/.well-known/oauth-authorization-server")
            ready = conn.getresponse()
            ready.read()
            if ready.status == 200:
                break
        conn.close()
        time.sleep(0.1)
    body = urlencode({"grant_type": "client_credentials"})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    def post(authorization: str, expect: int) -> float:
        start = time.perf_counter()
        conn.request("POST", "/oauth/token", body, {**headers, "Authorization": authorization})
        response = conn.getresponse()
        response.read()
        took = time.perf_counter() - start
        if response.status != expect:
            raise RuntimeError(f"expected {expect}, got {response.status}")
        return took

    def unknown() -> float:
        return post(basic("unknown-" + secrets.token_urlsafe(16), "x" * 43), 401)

    turn = 0

    def wrong_secret() -> float:
        nonlocal turn
        turn += 1
        return post(basic(known[turn % len(known)][0], secrets.token_urlsafe(32)), 401)

    log(f"{args.warmup} warm-up pairs, then {args.n} of each kind, interleaved")
    for _ in range(args.warmup):
        unknown()
        wrong_secret()
    times: dict[str, list[float]] = {"unknown": [], "wrong": []}
    for i in range(args.n):
        if i % 2:
            times["unknown"].append(unknown())
            times["wrong"].append(wrong_secret())
        else:
            times["wrong"].append(wrong_secret())
            times["unknown"].append(unknown())
    good = [post(basic(*known[i % len(known)]), 200) for i in range(min(args.n, 200))]
    conn.close()

    m_unknown = statistics.median(times["unknown"]) * 1000
    m_wrong = statistics.median(times["wrong"]) * 1000
    ratio = m_unknown / m_wrong
    print(f"\n## Client authentication timing (SQLite, client cache 5 s, n={args.n} each)")
    print(f"unknown client_id:            median {m_unknown:.3f} ms")
    print(f"known client_id, wrong secret: median {m_wrong:.3f} ms")
    print(f"ratio unknown / wrong secret: {ratio:.3f} (target 0.90-1.10)")
    print(f"(a successful request, for scale: median {statistics.median(good) * 1000:.3f} ms)")
    return 0 if 0.9 <= ratio <= 1.1 else 1


if __name__ == "__main__":
    sys.exit(main())
