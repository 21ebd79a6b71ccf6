"""A token request's CPU in-process: Keyturn's ASGI app with no socket, no HTTP, no wrk.

    python benchmarks/inprocess_issuance.py                        # ~1 min
    python benchmarks/inprocess_issuance.py --baseline-src /tmp/old/src --rounds 7
    python benchmarks/inprocess_issuance.py --without signature    # what a step costs

Each round starts a fresh child process per tree (alternating which goes first),
which builds ``create_app()`` on a new SQLite data directory, runs its lifespan,
creates one client, then drives ``POST /oauth/token`` (client_credentials,
client_secret_post, one scope, one resource) straight through the ASGI
interface: ``--requests`` requests from ``--concurrency`` callers on uvloop,
after a warm-up. Its CPU time (``process_time``: every thread, the SQLite
writer's included) divided by the requests is the figure; user and system
time and the wall time are printed beside it. Every answer must be 200 and
every token recorded, or the round fails.

Without the machine's noise from HTTP parsing, sockets and a load generator
sharing the cores, this is the measure for a change to the token path itself
(benchmarks/README.md, "Signatures back to back"). ``--without signature``
swaps the key ring's signing for a fixed string and ``--without write`` the
recorder's write for nothing, so a step's cost is the difference to the plain
run. For instruction counts, run a child under ``valgrind --tool=cachegrind``
with two ``--requests`` values and take the difference.

SQLite only: in-process rounds on PostgreSQL scattered by more than the
changes measured here (the server's own work shares the cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from run import log, median  # noqa: E402

AUDIENCE = "https://api.bench.test"
WARM_UP = 400
STEPS = ("signature", "write")


def token_scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/oauth/token",
        "raw_path": b"/oauth/token",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


def take_out(step: str, ctx: Any) -> None:
    """Replace one step of the token path with nothing (its cost is the difference)."""
    if step == "signature":

        async def fixed(signer: Any, signing_input: bytes, *, busy: bool | None = None) -> str:
            return signing_input.decode() + ".not-signed"

        ctx.keyring.sign_prepared = fixed
    elif step == "write":

        async def nothing() -> None:
            return None

        ctx.issuer._recorder.submit = lambda record: nothing()
    else:
        raise ValueError(f"unknown step {step!r}; choose from {STEPS}")


async def measure(requests: int, concurrency: int, without: list[str]) -> dict[str, Any]:
    """One child's measurement, on the running loop (see the module docstring); the
    algorithm is the environment's (``KEYTURN_SIGNING_ALG``, set by `child`)."""
    from keyturn.server import client_service
    from keyturn.server.app import create_app
    from keyturn.server.settings import Settings

    app = create_app(Settings())
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send_lifespan(message: dict[str, Any]) -> None:
        await from_app.put(message)

    lifespan_scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.ensure_future(app(lifespan_scope, to_app.get, send_lifespan))
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    ctx = app.state.keyturn
    made = await client_service.create(
        ctx, name="inprocess", grant_types=["client_credentials"], scopes=["read"],
        audiences=[AUDIENCE], rate_limit=0,
    )  # fmt: skip
    body = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": made.client.client_id,
         "client_secret": made.secret, "scope": "read", "resource": AUDIENCE}
    ).encode()  # fmt: skip
    for step in without:
        take_out(step, ctx)
    statuses: Counter[int] = Counter()

    async def one() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect while the answer is written
            raise AssertionError("unreachable")

        status = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(token_scope(body), receive, send)
        statuses[status] += 1

    async def caller(count: int) -> None:
        for _ in range(count):
            await one()

    async def burst(total: int) -> None:
        await asyncio.gather(*(caller(total // concurrency) for _ in range(concurrency)))

    await burst(WARM_UP)
    cpu, times, wall = time.process_time(), os.times(), time.perf_counter()
    await burst(requests)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = os.times()
    done = requests // concurrency * concurrency
    await to_app.put({"type": "lifespan.shutdown"})
    await from_app.get()
    await lifespan
    if set(statuses) != {200}:
        raise RuntimeError(f"not every answer was 200: {dict(statuses)}")
    db = Path(os.environ["KEYTURN_DATA_DIR"]) / "keyturn.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM tokens").fetchone()[0]
    expected = 0 if "write" in without else WARM_UP // concurrency * concurrency + done
    if rows != expected:
        raise RuntimeError(f"{rows} token rows recorded, expected {expected}")
    return {
        "cpu_us": cpu / done * 1e6,
        "user_us": (after.user - times.user) / done * 1e6,
        "system_us": (after.system - times.system) / done * 1e6,
        "wall_us": wall / done * 1e6,
        "requests": done,
        "rows": rows,
    }


def child(args: argparse.Namespace) -> int:
    import uvloop

    data_dir = tempfile.mkdtemp(prefix="keyturn-inprocess-")
    os.environ.update(
        KEYTURN_DATA_DIR=data_dir,
        KEYTURN_PEPPER=secrets.token_hex(32),
        KEYTURN_SIGNING_ALG=args.alg,
        KEYTURN_ISSUER="http://127.0.0.1",
        KEYTURN_SIGN_PROCESSES="0",
        KEYTURN_LOG_LEVEL="warning",
        KEYTURN_GC_FREEZE="true",  # as `keyturn serve` runs
    )
    os.environ.pop("KEYTURN_DATABASE_URL", None)
    try:
        result = uvloop.run(measure(args.requests, args.concurrency, args.without))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def run_child(src: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", "--requests", str(args.requests),
           "--concurrency", str(args.concurrency), "--alg", args.alg,
           *(f"--without={step}" for step in args.without)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the in-process run failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> str:
    steps = f", without the {' and the '.join(args.without)}" if args.without else ""
    lines = [
        f"## A token request in-process ({args.alg}, SQLite, {args.concurrency} callers{steps})",
        "",
        f"{args.rounds} round(s) of {args.requests} requests, a fresh process each, "
        "alternating trees; medians. CPU = process_time (every thread) per request.",
        "",
        "| tree | CPU µs | user µs | system µs | wall µs | vs baseline |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = median([r["cpu_us"] for r in runs["baseline"]]) if "baseline" in runs else None
    for name, results in runs.items():
        cpu = median([r["cpu_us"] for r in results])
        ratio = f"{cpu / base:.3f}x" if base else "—"
        lines.append(
            f"| {name} | {cpu:.1f} | {median([r['user_us'] for r in results]):.1f} "
            f"| {median([r['system_us'] for r in results]):.1f} "
            f"| {median([r['wall_us'] for r in results]):.1f} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000, help="per round (default 3000)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--alg", choices=("ES256", "RS256", "EdDSA"), default="ES256")
    parser.add_argument("--without", action="append", default=[], choices=STEPS,
                        help="take a step out (repeatable)")  # fmt: skip
    parser.add_argument("--baseline-src", type=Path, help="also run this src/ tree")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.requests < args.concurrency:
        parser.error("--requests must be at least --concurrency")
    if args.child:
        return child(args)
    trees: dict[str, Path | None] = {"this tree": None}
    if args.baseline_src is not None:
        trees["baseline"] = args.baseline_src.resolve()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        log(f"round {round_ + 1}/{args.rounds}")
        order = list(trees.items())
        for name, src in order if round_ % 2 == 0 else reversed(order):
            runs[name].append(run_child(src, args))
    sys.stdout.write(report(args, runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
