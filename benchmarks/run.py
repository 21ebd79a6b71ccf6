"""Keyturn's benchmark suite: token issuance against a peer and against the cost of signing.

    python benchmarks/run.py            # full run, about 7 minutes on 2 cores
    python benchmarks/run.py --quick    # about 2 minutes, one short round

What it measures, in one run on one machine (see benchmarks/README.md):

* token issuance (client credentials, RFC 9068 JWT access tokens, RS256 and
  ES256): tokens/s and p50/p99 latency at concurrency 1, 16 and 64, with wrk
  and a Lua POST script as the load generator in its own process, for Keyturn
  on SQLite and on PostgreSQL (one server process; two with ``--workers 2``
  at concurrency 64), and for the peer node-oidc-provider (benchmarks/peer/);
* the signing limit: signatures/s of joserfc (Keyturn's JOSE library) and of
  pyca/cryptography for the same algorithm and key size in a tight loop, on
  one thread and on two;
* the SDK and guard overheads, by running benchmarks/sdk_overhead.py and
  benchmarks/verify_overhead.py when they exist;
* with ``--guard``, benchmarks/guard.py: a Starlette API's throughput with and
  without the guard's middleware, and against a PyJWT middleware;
* with ``--revocation``, RFC 7009 revocations/s at concurrency 1 and 16, each request
  revoking a live token of its own from a pool minted before the run;
* with ``--cold-start``, benchmarks/cold_start.py: launch to first token;
* with ``--table-growth``, benchmarks/table_growth.py: issuance and
  introspection on an empty vs a pre-loaded token table, disk per token, and
  the purge (``--table-growth-rows`` sets the table's size).

Targets are measured interleaved, round after round, and each figure is the
median of the rounds, so that noise from other work on the machine hits all of
them alike; the ratios compare figures of the same run. Every server listens on
127.0.0.1 only, every load run has a fixed duration, and every process started
here is stopped at the end. The Markdown table, a PNG chart and the raw JSON go
to benchmarks/results/ (not committed); the table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import concurrent.futures
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PEER_DIR = HERE / "peer"
LUA = HERE / "token.lua"
INTROSPECT_LUA = HERE / "introspect.lua"
INTROSPECTION_CONCURRENCY = (1, 16)
INTROSPECTION_POOL = 50
"""Tokens each introspection run cycles through: a resource server sees many
clients' tokens, each of them again and again for its lifetime."""

REVOKE_LUA = HERE / "revoke.lua"
REVOCATION_CONCURRENCY = (1, 16)
REVOCATION_HEADROOM = 1.5
"""Each run's pool holds this many times the tokens the warm-up rate says it needs."""
REVOCATION_MAX_POOL = 60_000

ALGS = ("RS256", "ES256")
CONCURRENCY = (1, 16, 64)
AUDIENCE = "https://api.bench.test"
SCOPE = "read"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/keyturn_bench"

# Published figures, quoted for context and never re-measured here.
ANCHORS = (
    (
        "Ory Hydra",
        "513 client-credentials tokens/s on 2 vCPU (Ory's published benchmark)",
        513.0,
    ),
    (
        "Keycloak",
        "~120 client-credentials grants/s per vCPU (Keycloak sizing guide), ~240/s on 2 vCPU",
        240.0,
    ),
)


# -- small helpers -------------------------------------------------------------
def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(
    method: str, url: str, body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- servers -------------------------------------------------------------------
@dataclass
class Target:
    """One server under test."""

    key: str  # e.g. "keyturn-sqlite", "keyturn-postgres-w2", "peer"
    label: str
    alg: str
    url: str = ""
    token_path: str = "/oauth/token"
    body: str = ""
    concurrency: tuple[int, ...] = CONCURRENCY
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    unavailable: str | None = None  # why it could not be measured
    runs: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    introspect_path: str = "/oauth/introspect"
    revoke_path: str = "/oauth/revoke"
    introspect_bodies: list[str] = field(default_factory=list)
    client_auth: dict[str, str] = field(default_factory=dict)  # client_id, client_secret

    @property
    def token_url(self) -> str:
        return self.url + self.token_path

    @property
    def introspect_url(self) -> str:
        return self.url + self.introspect_path


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a server we started (its own process group: uvicorn workers go too)."""
    if process is None or process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def wait_ready(target: Target, probe_path: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    assert target.process is not None
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            raise RuntimeError(f"{target.label} exited early; log: {target.log_path}")
        with suppress(OSError):
            status, _ = http("GET", target.url + probe_path, timeout=1.0)
            if status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(
        f"{target.label} did not become ready in {timeout:.0f}s; log: {target.log_path}"
    )


def check_token(target: Target) -> None:
    """One real token request: 200, a JWT with the expected alg and typ."""
    import base64

    status, raw = http("POST", target.token_url, target.body.encode(), timeout=10.0)
    if status != 200:
        raise RuntimeError(f"{target.label}: token request answered {status}: {raw[:300]!r}")
    token = json.loads(raw)["access_token"]
    head = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    if header.get("alg") != target.alg or header.get("typ") != "at+jwt":
        raise RuntimeError(f"{target.label}: unexpected JWT header {header}")


def keyturn_env(
    data_dir: Path, database_url: str, alg: str, pepper: str, src: Path | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(
        KEYTURN_DATA_DIR=str(data_dir),
        KEYTURN_DATABASE_URL=database_url,
        KEYTURN_PEPPER=pepper,
        KEYTURN_SIGNING_ALG=alg,
    )
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start_keyturn(
    target: Target,
    *,
    tmp: Path,
    database_url: str,
    workers: int,
    src: Path | None,
    extra_env: dict[str, str] | None = None,
) -> None:
    data_dir = tmp / f"{target.alg}-{target.key}"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = keyturn_env(data_dir, database_url, target.alg, secrets.token_hex(32), src)
    env.update(extra_env or {})
    keyturn = [sys.executable, "-m", "keyturn.cli"]
    done = subprocess.run(
        [*keyturn, "clients", "create", "--json", "--name", "bench", "--rate-limit", "0",
         "--scope", SCOPE, "--audience", AUDIENCE],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"keyturn clients create failed: {done.stderr[-2000:]}")
    client = json.loads(done.stdout)
    target.client_auth = {
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }
    port = free_port()
    target.url = f"http://127.0.0.1:{port}"
    env["KEYTURN_ISSUER"] = target.url
    target.body = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scope": SCOPE,
            "resource": AUDIENCE,
        }
    )
    target.log_path = data_dir / "server.log"
    with target.log_path.open("wb") as out:
        target.process = subprocess.Popen(
            [*keyturn, "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers), "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    wait_ready(target, "/.well-known/oauth-authorization-server")
    check_token(target)


def peer_unavailable() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
        if shutil.which("npm") is None:
            return "npm is not installed (needed once: npm install in benchmarks/peer)"
        log("installing node-oidc-provider (npm install in benchmarks/peer)")
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PEER_DIR, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            return "npm install of oidc-provider failed: " + done.stderr.strip()[-200:]
    return None


def start_peer(target: Target, *, tmp: Path, token_format: str = "jwt") -> None:
    """The peer; ``token_format="opaque"`` for introspection (it refuses its JWTs)."""
    port = free_port()
    secret = secrets.token_urlsafe(32)
    target.url = f"http://127.0.0.1:{port}"
    target.token_path = "/token"
    target.introspect_path = "/token/introspection"
    target.revoke_path = "/token/revocation"
    target.client_auth = {"client_id": "bench", "client_secret": secret}
    target.body = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": "bench",
            "client_secret": secret,
            "scope": SCOPE,
            "resource": AUDIENCE,
        }
    )
    target.log_path = tmp / f"peer-{target.alg}-{token_format}.log"
    with target.log_path.open("wb") as out:
        target.process = subprocess.Popen(
            ["node", "server.mjs", "--port", str(port), "--alg", target.alg,
             "--client-id", "bench", f"--client-secret={secret}",
             "--scope", SCOPE, "--audience", AUDIENCE, "--format", token_format],
            cwd=PEER_DIR, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    wait_ready(target, "/.well-known/openid-configuration")
    if token_format == "jwt":
        check_token(target)


def prepare_introspection(target: Target, pool: int = INTROSPECTION_POOL) -> None:
    """Issue ``pool`` tokens and build one introspection body per token.

    The introspecting client is the one the tokens were issued to, with its
    secret in the form body (client_secret_post), on both servers; each answer
    is checked to be active before the load runs.
    """
    target.introspect_bodies = []
    for _ in range(pool):
        status, raw = http("POST", target.token_url, target.body.encode(), timeout=10.0)
        if status != 200:
            raise RuntimeError(f"{target.label}: token request answered {status}: {raw[:300]!r}")
        token = json.loads(raw)["access_token"]
        target.introspect_bodies.append(
            urllib.parse.urlencode({"token": token, **target.client_auth})
        )
    check_introspection(target)


def check_introspection(target: Target) -> None:
    """Every pooled token introspects as active (so a run measures real answers)."""
    for body in target.introspect_bodies:
        status, raw = http("POST", target.introspect_url, body.encode(), timeout=10.0)
        if status != 200 or json.loads(raw).get("active") is not True:
            raise RuntimeError(f"{target.label}: introspection answered {status}: {raw[:300]!r}")


_MADE: dict[str, str] = {}
"""Benchmark databases this run made (name -> admin URL): dropped when it exits."""


def drop_postgres_databases() -> None:
    """Leave nothing behind in the shared PostgreSQL: drop every database made here."""
    import asyncpg

    async def work() -> None:
        for name, admin in list(_MADE.items()):
            conn = await asyncpg.connect(admin, timeout=5)
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            finally:
                await conn.close()
            del _MADE[name]

    with suppress(Exception):  # at exit: a database that is gone is fine
        asyncio.run(work())


def reset_postgres(url: str, *, synchronous_commit: bool = True) -> str | None:
    """Drop and create the benchmark database; ``None`` or why PostgreSQL is unusable.

    ``synchronous_commit=False`` sets that on this database only: the
    operator's trade the README describes, measured beside the default.
    """
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:
        return "asyncpg is not installed (pip install 'keyturn[postgres]')"
    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        return f"unexpected database name {name!r}"
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))

    async def work() -> None:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {name}")
            if not _MADE:
                atexit.register(drop_postgres_databases)
            _MADE[name] = admin
            if not synchronous_commit:
                await conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
        finally:
            await conn.close()

    try:
        asyncio.run(work())
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL is not reachable at {admin} ({exc.__class__.__name__})"
    return None


# -- load ----------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stats() -> dict[int, tuple[int, str, int]]:
    """Every live process: pid -> (parent pid, command name, CPU ticks), or {} without /proc."""
    out: dict[int, tuple[int, str, int]] = {}
    with suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                raw = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            out[int(entry.name)] = (int(fields[1]), name, int(fields[11]) + int(fields[12]))
    return out


def _cpu_of(root: int | None, stats: dict[int, tuple[int, str, int]]) -> tuple[int, int]:
    """CPU ticks of ``root`` and its descendants (workers, signing helpers), and of
    PostgreSQL's processes (the machine's: the benchmark's database is among them)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = 0, [root] if root is not None else []
    while todo:
        pid = todo.pop()
        tree += stats.get(pid, (0, "", 0))[2]
        todo.extend(children.get(pid, ()))
    database = sum(ticks for _, name, ticks in stats.values() if name == "postgres")
    return tree, database


def wrk(
    target: Target, connections: int, duration: float, *, introspect: bool = False
) -> dict[str, float]:
    """One wrk run: successful requests/s and p50/p99 latency in ms.

    Token requests (token.lua), or with ``introspect`` introspection requests
    cycling through the target's pool of tokens (introspect.lua).
    """
    threads = 1 if connections < 16 else 2
    script, url = (INTROSPECT_LUA, target.introspect_url) if introspect else (LUA, target.token_url)
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    env = dict(os.environ, BENCH_BODY=target.body, BENCH_BODIES="\n".join(target.introspect_bodies))
    root = target.process.pid if target.process is not None else None
    before, wrk_before = _cpu_of(root, _proc_stats()), _children_cpu()
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    after, wrk_after = _cpu_of(root, _proc_stats()), _children_cpu()
    match = re.search(r"^WRKJSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    data = json.loads(match.group(1))
    errors = data["connect"] + data["read"] + data["write"] + data["status"] + data["timeout"]
    seconds = data["duration_us"] / 1e6
    per_request = 1e6 / max(data["requests"], 1)  # microseconds of CPU per request
    return {
        "rps": (data["requests"] - data["status"]) / seconds,
        "p50": data["p50_us"] / 1000.0,
        "p99": data["p99_us"] / 1000.0,
        "errors": float(errors),
        "requests": float(data["requests"]),
        "cpu_server_us": (after[0] - before[0]) / TICK * per_request,
        "cpu_database_us": (after[1] - before[1]) / TICK * per_request,
        "cpu_wrk_us": (wrk_after - wrk_before) * per_request,
    }


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (each wrk run, once it ends)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- signing limit -------------------------------------------------------------
def sample_claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "http://127.0.0.1:8000", "sub": secrets.token_urlsafe(16), "aud": AUDIENCE,
        "client_id": secrets.token_urlsafe(16), "iat": now, "exp": now + 18000,
        "jti": secrets.token_urlsafe(16), "scope": SCOPE,
    }  # fmt: skip


def signing_functions(alg: str) -> dict[str, Callable[[], object]]:
    """Sign-one-token callables: joserfc JWS compact, and pyca/cryptography's bare sign()."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from joserfc import jws
    from joserfc.jwk import ECKey, RSAKey

    payload = json.dumps(sample_claims(), separators=(",", ":"))
    header = {"typ": "at+jwt", "alg": alg, "kid": "bench"}
    data = payload.encode()
    if alg == "RS256":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jose_rsa = RSAKey.import_key(rsa_key)
        pad, sha = padding.PKCS1v15(), hashes.SHA256()
        return {
            "joserfc": lambda: jws.serialize_compact(header, payload, jose_rsa, algorithms=[alg]),
            "cryptography": lambda: rsa_key.sign(data, pad, sha),
        }
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jose_ec = ECKey.import_key(ec_key)
    ecdsa = ec.ECDSA(hashes.SHA256())
    return {
        "joserfc": lambda: jws.serialize_compact(header, payload, jose_ec, algorithms=[alg]),
        "cryptography": lambda: ec_key.sign(data, ecdsa),
    }


def signing_rate(fn: Callable[[], object], threads: int, seconds: float) -> float:
    counts = [0] * threads
    start_gate = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def loop(i: int) -> None:
        start_gate.wait()
        n = 0
        clock = time.perf_counter
        while clock() < stop_at[0]:
            fn()
            n += 1
        counts[i] = n

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    start_gate.wait()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - t0)


# -- SDK and guard overheads ---------------------------------------------------
OVERHEAD_SCRIPTS = (
    ("SDK (sdk_overhead.py)", HERE / "sdk_overhead.py"),
    ("Guard (verify_overhead.py)", HERE / "verify_overhead.py"),
)


def run_overhead(path: Path, quick: bool) -> dict[str, Any]:
    if not path.exists():
        return {"status": "not yet available", "lines": []}
    args: list[str] = []
    if quick:
        help_text = subprocess.run(
            [sys.executable, str(path), "--help"],
            capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
        ).stdout  # fmt: skip
        if "--rounds" in help_text:
            args += ["--rounds", "3"]
    try:
        done = subprocess.run(
            [sys.executable, str(path), *args],
            capture_output=True, text=True, timeout=240, check=False, cwd=ROOT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"status": "timed out after 240 s", "lines": []}
    lines = [ln.rstrip() for ln in done.stdout.splitlines() if ln.strip()]
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"status": f"failed: {tail[:160]}", "lines": lines}
    found = re.findall(r"overhead[^\n%]*?([+-]?\d+(?:\.\d+)?)\s*%", done.stdout, re.IGNORECASE)
    status = f"{found[-1]} %" if found else "ran (see lines)"
    if found and not found[-1].startswith(("+", "-")):
        status = "+" + status
    return {"status": status, "lines": lines}


def run_guard(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """benchmarks/guard.py in its own process: its table, and its raw numbers."""
    log("running guard.py")
    out = str(args.out.resolve())  # it runs in ROOT
    cmd = [sys.executable, str(HERE / "guard.py"), "--algs", *args.algs, "--out", out]
    try:
        done = subprocess.run(
            cmd + (["--quick"] if args.quick else []),
            stdout=subprocess.PIPE, text=True, timeout=900, check=False, cwd=ROOT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "guard.py timed out after 900 s\n", {}
    if done.returncode != 0:
        return f"guard.py failed (exit {done.returncode}; its log is above)\n", {}
    return done.stdout, json.loads((args.out / "guard.json").read_text())


def run_cold_start(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """benchmarks/cold_start.py in its own process (with --baseline-src if given)."""
    log("running cold_start.py")
    out = str(args.out.resolve())
    cmd = [sys.executable, str(HERE / "cold_start.py"), "--out", out]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--baseline-src", str(args.baseline_src.resolve())] if args.baseline_src else []
    cmd += ["--no-peer"] if args.no_peer else []
    try:
        done = subprocess.run(
            cmd, stdout=subprocess.PIPE, text=True, timeout=900, check=False, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return "cold_start.py timed out after 900 s\n", {}
    if done.returncode != 0:
        return f"cold_start.py failed (exit {done.returncode}; its log is above)\n", {}
    return done.stdout, json.loads((args.out / "cold_start.json").read_text())


def run_table_growth(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """benchmarks/table_growth.py in its own process: its tables, and its raw numbers."""
    log("running table_growth.py")
    cmd = [sys.executable, str(HERE / "table_growth.py"), "--out", str(args.out.resolve())]
    cmd += ["--postgres-url", args.postgres_url, "--alg", args.algs[-1]]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--rows", str(args.table_growth_rows)] if args.table_growth_rows else []
    cmd += [f"--no-{name}" for name in ("sqlite", "postgres") if getattr(args, f"no_{name}")]
    try:
        done = subprocess.run(
            cmd, stdout=subprocess.PIPE, text=True, timeout=7200, check=False, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return "table_growth.py timed out after 7200 s\n", {}
    if done.returncode != 0:
        return f"table_growth.py failed (exit {done.returncode}; its log is above)\n", {}
    return done.stdout, json.loads((args.out / "table_growth.json").read_text())


# -- report --------------------------------------------------------------------
def fmt_rate(value: float) -> str:
    return "n/a" if value != value else f"{value:,.0f}"


def fmt_ms(value: float) -> str:
    if value != value:
        return "n/a"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f}x"


def summarize(targets: list[Target]) -> dict[tuple[str, str, int], dict[str, float]]:
    out: dict[tuple[str, str, int], dict[str, float]] = {}
    for t in targets:
        for conc, runs in t.runs.items():
            out[(t.alg, t.key, conc)] = {
                "rps": median([r["rps"] for r in runs]),
                "p50": median([r["p50"] for r in runs]),
                "p99": median([r["p99"] for r in runs]),
                "errors": sum(r["errors"] for r in runs),
                "rounds": float(len(runs)),
                **{
                    key: median([r[key] for r in runs if key in r])
                    for key in ("cpu_server_us", "cpu_database_us", "cpu_wrk_us")
                },
            }
    return out


def workers_ceiling(args: argparse.Namespace, stats: dict[Any, dict[str, float]]) -> list[str]:
    """Why two workers can or cannot reach a given ratio on this machine: the CPU.

    Every process of the run shares the machine's cores: the server (its
    workers, its signing helpers), PostgreSQL and wrk. With one worker at c=64,
    a token costs so many microseconds of CPU in each; were the cores all busy
    at that cost, tokens/s would be cores / cost. That over the one-worker
    rate is the most a second worker could add: the ceiling.
    """
    cores = os.cpu_count() or 1
    rows = []
    for alg in args.algs:
        for backend, label in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
            one = stats.get((alg, f"keyturn-{backend}", 64))
            two = stats.get((alg, f"keyturn-{backend}-w2", 64))
            if not one or not two or one.get("cpu_server_us") != one.get("cpu_server_us"):
                continue
            database = one["cpu_database_us"] if backend == "postgres" else 0.0
            cost = one["cpu_server_us"] + database + one["cpu_wrk_us"]
            busy = one["rps"] * cost / 1e6
            ceiling = cores / busy if busy > 0 else None
            db_cell = f"{database:.0f}" if backend == "postgres" else "—"
            rows.append(
                f"| {alg} | {label} | {one['cpu_server_us']:.0f} | {db_cell} | "
                f"{one['cpu_wrk_us']:.0f} | {busy:.2f} | {fmt_ratio(ceiling)} | "
                f"{fmt_ratio(two['rps'] / one['rps'] if one['rps'] else None)} |"
            )
    if not rows:
        return []
    return [
        "## Workers: the CPU ceiling on this machine",
        "",
        f"One worker at concurrency 64: CPU per token (microseconds) in the server's processes "
        f"(workers and signing helpers), in PostgreSQL's, and in wrk; the cores that uses at "
        f"its rate; and the ceiling for more workers, {cores} cores / cores used (what a "
        "second worker could reach if tokens cost the same CPU and every core were busy). "
        "Measured = 2 workers / 1 worker, same run.",
        "",
        "| alg | database | server µs | database µs | wrk µs | cores used | ceiling | measured |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def _plain_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}


def build_report(
    args: argparse.Namespace,
    targets: list[Target],
    signing: dict[tuple[str, str, int], list[float]],
    overheads: list[tuple[str, dict[str, Any]]],
    elapsed: float,
) -> tuple[str, dict[str, Any]]:
    stats = summarize(targets)
    limit = {alg: median(signing.get((alg, "joserfc", 1), [])) for alg in ALGS}
    lines: list[str] = []
    add = lines.append
    if args.no_issuance:
        add(f"Issuance not measured (--no-issuance). Total run time {elapsed:.0f} s.")
        return "\n".join(lines) + "\n", {"args": _plain_args(args), "elapsed_s": elapsed}
    add("## Token issuance: client credentials, JWT access tokens")
    add("")
    add(
        f"{args.rounds} round(s) of {args.duration:g} s per cell, interleaved; medians. "
        f"Machine: {os.cpu_count()} CPU(s), shared. wrk on the same machine. "
        "vs peer = tokens/s / node-oidc-provider's at the same alg and concurrency; "
        "vs limit = tokens/s / joserfc's single-thread signing rate (the crypto floor)."
    )
    add("")
    add("| alg | server | conc. | tokens/s | p50 ms | p99 ms | vs peer | vs limit |")
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    for alg in args.algs:
        peer_t = next((t for t in targets if t.alg == alg and t.key == "peer"), None)
        for t in (t for t in targets if t.alg == alg):
            if t.unavailable:
                why = " ".join(t.unavailable.replace("|", "/").split())
                add(f"| {alg} | {t.label} | - | {why} | | | | |")
                continue
            for conc in t.concurrency:
                s = stats.get((alg, t.key, conc))
                if s is None:
                    continue
                peer_s = (
                    stats.get((alg, "peer", conc)) if peer_t and not peer_t.unavailable else None
                )
                vs_peer = s["rps"] / peer_s["rps"] if peer_s and peer_s["rps"] > 0 else None
                vs_limit = s["rps"] / limit[alg] if limit.get(alg) else None
                if t.key == "peer":
                    vs_peer = None
                err = f" ({int(s['errors'])} errors)" if s["errors"] else ""
                add(
                    f"| {alg} | {t.label} | {conc} | {fmt_rate(s['rps'])}{err} | "
                    f"{fmt_ms(s['p50'])} | {fmt_ms(s['p99'])} | "
                    f"{'—' if t.key == 'peer' else fmt_ratio(vs_peer)} | {fmt_ratio(vs_limit)} |"
                )
    add("")
    lines.extend(workers_ceiling(args, stats))
    add("## Signing limit: one token's signature in a tight loop (same alg and key size)")
    add("")
    add("| alg | library | threads | signatures/s | vs joserfc 1 thread |")
    add("|---|---|---:|---:|---:|")
    for alg in args.algs:
        for lib in ("joserfc", "cryptography"):
            for threads in (1, 2):
                rate = median(signing.get((alg, lib, threads), []))
                ratio = rate / limit[alg] if limit.get(alg) else None
                add(f"| {alg} | {lib} | {threads} | {fmt_rate(rate)} | {fmt_ratio(ratio)} |")
    add("")
    add("## Published anchors (context, not measured here)")
    add("")
    for name, text, _ in ANCHORS:
        add(f"- {name}: {text}.")
    add("")
    add("## Client SDK and guard overhead")
    add("")
    add("| benchmark | overhead | detail |")
    add("|---|---:|---|")
    for name, result in overheads:
        detail = "; ".join(result["lines"][-4:]).replace("|", "/")
        add(f"| {name} | {result['status']} | {detail} |")
    add("")
    add(f"Total run time {elapsed:.0f} s.")
    data = {
        "args": _plain_args(args),
        "issuance": [
            {"alg": a, "target": k, "concurrency": c, **v} for (a, k, c), v in stats.items()
        ],
        "raw_runs": {f"{t.alg}/{t.key}": t.runs for t in targets},
        "unavailable": {f"{t.alg}/{t.key}": t.unavailable for t in targets if t.unavailable},
        "signing": [
            {"alg": a, "library": lib, "threads": n, "rates": v, "median": median(v)}
            for (a, lib, n), v in signing.items()
        ],
        "overheads": {name: r for name, r in overheads},
        "elapsed_s": elapsed,
    }
    return "\n".join(lines) + "\n", data


def draw_chart(path: Path, args: argparse.Namespace, targets: list[Target],
               signing: dict[tuple[str, str, int], list[float]]) -> str | None:  # fmt: skip
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (pip install matplotlib)"
    stats = summarize(targets)
    fig, axes = plt.subplots(1, len(args.algs), figsize=(7 * len(args.algs), 5), squeeze=False)
    for ax, alg in zip(axes[0], args.algs, strict=True):
        shown = [t for t in targets if t.alg == alg and not t.unavailable]
        concs = sorted({c for t in shown for c in t.concurrency})
        width = 0.8 / max(1, len(shown))
        for i, t in enumerate(shown):
            xs = [concs.index(c) + (i - (len(shown) - 1) / 2) * width for c in t.concurrency]
            ys = [stats.get((alg, t.key, c), {}).get("rps", 0.0) for c in t.concurrency]
            ax.bar(xs, ys, width, label=t.label)
        lim = median(signing.get((alg, "joserfc", 1), []))
        if lim == lim:
            ax.axhline(lim, color="black", linestyle="--", linewidth=1,
                       label=f"signing limit, joserfc 1 thread ({lim:,.0f}/s)")  # fmt: skip
        for (name, _, value), style in zip(ANCHORS, (":", "-."), strict=True):
            ax.axhline(value, color="grey", linestyle=style, linewidth=1,
                       label=f"{name} published ({value:.0f}/s, 2 vCPU)")  # fmt: skip
        ax.set_xticks(range(len(concs)), [f"c={c}" for c in concs])
        ax.set_ylabel("tokens/s (median)")
        ax.set_title(f"Client-credentials JWT issuance, {alg}")
        # Below the plot: inside, it covered the tallest bars.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
        if lim == lim and lim > 4 * max((b.get_height() for b in ax.patches), default=1):
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return None


# -- orchestration ------------------------------------------------------------
@contextmanager
def servers(args: argparse.Namespace, alg: str, tmp: Path) -> Iterator[list[Target]]:
    targets: list[Target] = []
    with ExitStack() as stack:
        plan: list[tuple[Target, Callable[[Target], None]]] = []

        def keyturn(
            backend: str, workers: int, src: Path | None, label: str, *, sync: bool = True
        ) -> None:
            key = f"keyturn-{backend}" + (f"-w{workers}" if workers > 1 else "")
            if src is not None:
                key += "-baseline"
            if not sync:
                key += "-async-commit"
            t = Target(key, label, alg)
            if workers > 1:
                t.concurrency = (64,)
            if not sync:
                t.concurrency = (1,)  # where a commit's WAL flush is the request's wait

            def start(t: Target) -> None:
                if backend == "postgres":
                    url = args.postgres_url.rsplit("/", 1)[0] + f"/keyturn_bench_{alg.lower()}"
                    url += "_w2" if workers > 1 else ""
                    url += "_base" if src is not None else ""
                    url += "_async" if not sync else ""
                    why = reset_postgres(url, synchronous_commit=sync)
                    if why:
                        t.unavailable = why
                        return
                else:
                    url = f"sqlite+aiosqlite:///{tmp / f'{alg}-{t.key}' / 'keyturn.db'}"
                start_keyturn(t, tmp=tmp, database_url=url, workers=workers, src=src)

            plan.append((t, start))

        if not args.no_sqlite:
            keyturn("sqlite", 1, None, "Keyturn · SQLite")
        if not args.no_postgres:
            keyturn("postgres", 1, None, "Keyturn · PostgreSQL")
            if not args.no_async_commit:
                label = "Keyturn · PostgreSQL · synchronous_commit=off"
                keyturn("postgres", 1, None, label, sync=False)
        if args.baseline_src:
            if not args.no_sqlite:
                keyturn("sqlite", 1, args.baseline_src, "Keyturn baseline · SQLite")
            if not args.no_postgres:
                keyturn("postgres", 1, args.baseline_src, "Keyturn baseline · PostgreSQL")
        if not args.no_workers2:
            if not args.no_sqlite:
                keyturn("sqlite", 2, None, "Keyturn · SQLite · 2 workers")
            if not args.no_postgres:
                keyturn("postgres", 2, None, "Keyturn · PostgreSQL · 2 workers")
        if not args.no_peer:
            peer = Target("peer", "node-oidc-provider (peer)", alg)
            why = peer_unavailable()
            if why:
                peer.unavailable = why
                plan.append((peer, lambda t: None))
            else:
                plan.append((peer, lambda t: start_peer(t, tmp=tmp)))

        for t, start in plan:
            targets.append(t)
            try:
                start(t)
            except Exception as exc:
                t.unavailable = f"could not start: {exc}"[:300]
                log(f"{t.label} ({alg}): {t.unavailable}")
            stack.callback(stop_process, t.process)
        yield targets


@contextmanager
def introspection_servers(
    args: argparse.Namespace,
    alg: str,
    tmp: Path,
    *,
    section: str = "introspection",
    prepare: Callable[[Target], None] = prepare_introspection,
    concurrency: tuple[int, ...] = INTROSPECTION_CONCURRENCY,
) -> Iterator[list[Target]]:
    """Keyturn on SQLite and PostgreSQL (and a baseline tree, if given) and the
    peer with opaque tokens, each made ready by ``prepare`` (by default, with its
    pool of tokens to introspect; ``--revocation`` uses them too)."""
    tmp = tmp / section
    targets: list[Target] = []
    with ExitStack() as stack:
        plan: list[tuple[Target, Callable[[Target], None]]] = []

        def keyturn(backend: str, src: Path | None, label: str) -> None:
            key = f"keyturn-{backend}" + ("-baseline" if src is not None else "")
            t = Target(key, label, alg, concurrency=concurrency)

            def start(t: Target) -> None:
                if backend == "postgres":
                    url = args.postgres_url.rsplit("/", 1)[0]
                    url += f"/keyturn_bench_{alg.lower()}_{section[:2]}"
                    url += "_base" if src is not None else ""
                    why = reset_postgres(url)
                    if why:
                        t.unavailable = why
                        return
                else:
                    url = f"sqlite+aiosqlite:///{tmp / f'{alg}-{t.key}' / 'keyturn.db'}"
                start_keyturn(t, tmp=tmp, database_url=url, workers=1, src=src)
                prepare(t)

            plan.append((t, start))

        for backend, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
            if getattr(args, f"no_{backend}"):
                continue
            keyturn(backend, None, f"Keyturn · {name}")
            if args.baseline_src:
                keyturn(backend, args.baseline_src, f"Keyturn baseline · {name}")
        if not args.no_peer:
            peer = Target("peer", "node-oidc-provider (peer, opaque)", alg)
            peer.concurrency = concurrency
            why = peer_unavailable()
            if why:
                peer.unavailable = why
                plan.append((peer, lambda t: None))
            else:

                def start_opaque_peer(t: Target) -> None:
                    start_peer(t, tmp=tmp, token_format="opaque")
                    prepare(t)

                plan.append((peer, start_opaque_peer))
        tmp.mkdir(parents=True, exist_ok=True)
        for t, start in plan:
            targets.append(t)
            try:
                start(t)
            except Exception as exc:
                t.unavailable = f"could not start: {exc}"[:300]
                log(f"{t.label} ({alg}, {section}): {t.unavailable}")
            stack.callback(stop_process, t.process)
        yield targets


def measure_introspection(
    args: argparse.Namespace, alg: str, tmp: Path, warmup: float
) -> list[Target]:
    with introspection_servers(args, alg, tmp) as targets:
        live = [t for t in targets if not t.unavailable]
        for t in live:
            wrk(t, 16, warmup, introspect=True)
        for r in range(args.rounds):
            log(f"{alg}: introspection round {r + 1}/{args.rounds}")
            for conc in INTROSPECTION_CONCURRENCY:
                order = live if r % 2 == 0 else list(reversed(live))
                for t in order:
                    t.runs.setdefault(conc, []).append(wrk(t, conc, args.duration, introspect=True))
        for t in live:
            check_introspection(t)  # still active: the run measured real answers
    return targets


def introspection_report(args: argparse.Namespace, targets: list[Target]) -> list[str]:
    stats = summarize(targets)
    lines = [
        "## Introspection (RFC 7662)",
        "",
        f"{args.rounds} round(s) of {args.duration:g} s per cell, interleaved; medians. "
        f"Each server introspects a pool of {INTROSPECTION_POOL} of its own live access "
        "tokens, cycled, for the client they were issued to (client_secret_post): Keyturn "
        "its JWTs (signature, record and liveness checked), the peer its opaque tokens "
        "(in-memory adapter; it refuses to introspect its JWTs). "
        "vs peer = introspections/s / the peer's at the same concurrency, same run.",
        "",
        "| alg | server | conc. | introspections/s | p50 ms | p99 ms | vs peer |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for alg in args.algs:
        for t in (t for t in targets if t.alg == alg):
            if t.unavailable:
                why = " ".join(t.unavailable.replace("|", "/").split())
                lines.append(f"| {alg} | {t.label} | - | {why} | | | |")
                continue
            for conc in t.concurrency:
                s = stats.get((alg, t.key, conc))
                if s is None:
                    continue
                peer_s = stats.get((alg, "peer", conc))
                vs_peer = s["rps"] / peer_s["rps"] if peer_s and peer_s["rps"] > 0 else None
                err = f" ({int(s['errors'])} errors)" if s["errors"] else ""
                lines.append(
                    f"| {alg} | {t.label} | {conc} | {fmt_rate(s['rps'])}{err} | "
                    f"{fmt_ms(s['p50'])} | {fmt_ms(s['p99'])} | "
                    f"{'—' if t.key == 'peer' else fmt_ratio(vs_peer)} |"
                )
    lines.append("")
    return lines


# -- revocation ----------------------------------------------------------------
def mint_tokens(target: Target, count: int, threads: int = 8) -> list[str]:
    """``count`` access tokens from the target's token endpoint, on kept connections."""
    import http.client

    def mint(n: int) -> list[str]:
        port = int(target.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        tokens = []
        try:
            for _ in range(n):
                conn.request("POST", target.token_path, target.body, headers)
                resp = conn.getresponse()
                raw = resp.read()
                if resp.status != 200:
                    raise RuntimeError(
                        f"{target.label}: token answered {resp.status}: {raw[:200]!r}"
                    )
                tokens.append(json.loads(raw)["access_token"])
        finally:
            conn.close()
        return tokens

    shares = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return [t for batch in pool.map(mint, shares) for t in batch]


def revocation_body(target: Target, token: str) -> str:
    return urllib.parse.urlencode(
        {"token": token, "token_type_hint": "access_token", **target.client_auth}
    )


def revoke_run(
    target: Target, duration: float, pool: int, tmp: Path, concurrency: int
) -> dict[str, float]:
    """Mint ``pool`` tokens, revoke them with wrk at ``concurrency`` for ``duration`` seconds.

    ``reused`` counts requests past the pool's end (tokens revoked a second
    time, which RFC 7009 also answers 200); a sized pool keeps it at zero.
    Then each thread's first token introspects as inactive, and an unsent one as active.
    """
    tokens = mint_tokens(target, pool)
    bodies = tmp / f"revoke-{target.alg}-{target.key}.txt"
    bodies.write_text("\n".join(revocation_body(target, t) for t in tokens) + "\n")
    threads = min(2, concurrency)
    cmd = [
        "wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration:g}s",
        "--timeout", "10s", "-s", str(REVOKE_LUA), target.url + target.revoke_path,
    ]  # fmt: skip
    env = dict(os.environ, BENCH_BODIES_FILE=str(bodies), BENCH_THREADS=str(threads))
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    bodies.unlink()
    match = re.search(r"^WRKJSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    data = json.loads(match.group(1))
    errors = data["connect"] + data["read"] + data["write"] + data["status"] + data["timeout"]
    # Each wrk thread's first token was revoked: tokens[1] and tokens[2] with two
    # threads (thread 1 starts at tokens[0], but wrk calls request() once on that
    # thread to check the script, and thread 2 starts at tokens[1]), tokens[1] with
    # one; one far past the end of the run was not.
    checks = [(token, False) for token in tokens[1 : 1 + threads]]
    if pool - data["requests"] > 4 * concurrency:
        checks.append((tokens[-1], True))
    for token, active in checks:
        body = urllib.parse.urlencode({"token": token, **target.client_auth}).encode()
        status, raw = http("POST", target.introspect_url, body, timeout=10.0)
        if status != 200 or json.loads(raw).get("active") is not active:
            raise RuntimeError(f"{target.label}: introspection answered {status} {raw[:200]!r}")
    return {
        "rps": (data["requests"] - data["status"]) / (data["duration_us"] / 1e6),
        "p50": data["p50_us"] / 1000.0,
        "p99": data["p99_us"] / 1000.0,
        "errors": float(errors),
        "requests": float(data["requests"]),
        "pool": float(pool),
        "reused": float(max(0, data["requests"] - pool)),
    }


def measure_revocation(args: argparse.Namespace, alg: str, tmp: Path) -> list[Target]:
    """Interleaved rounds of `revoke_run`; each pool sized from a warm-up's rate.

    Two warm-ups, the second sized from the first: node's JIT made the peer's
    first second slow, and a pool sized from it ran out in the rounds (half the
    peer's requests were second revocations, which cost it less). A round that
    still runs out is run once more with a pool sized from its own rate.
    """
    with introspection_servers(
        args, alg, tmp, section="revocation", prepare=lambda t: None,
        concurrency=REVOCATION_CONCURRENCY,
    ) as targets:  # fmt: skip
        live = [t for t in targets if not t.unavailable]
        need: dict[tuple[str, int], int] = {}
        work = tmp / "revocation"

        def pool_for(rate: float, seconds: float) -> int:
            """Tokens for ``seconds`` at ``rate`` revocations/s, with headroom."""
            wanted = int(rate * seconds * REVOCATION_HEADROOM)
            return max(1000, min(REVOCATION_MAX_POOL, wanted))

        for t in live:
            for c in REVOCATION_CONCURRENCY:
                warm = revoke_run(t, 1.0, 2000, work, c)  # requests in 1 s: the rate
                warm = revoke_run(t, 1.0, pool_for(warm["requests"], 1.0), work, c)
                need[t.key, c] = pool_for(warm["requests"], args.duration)
        for r in range(args.rounds):
            log(f"{alg}: revocation round {r + 1}/{args.rounds}")
            for t in live if r % 2 == 0 else list(reversed(live)):
                for c in REVOCATION_CONCURRENCY:
                    run = revoke_run(t, args.duration, need[t.key, c], work, c)
                    if run["reused"] and need[t.key, c] < REVOCATION_MAX_POOL:
                        rate = run["requests"] / args.duration
                        need[t.key, c] = pool_for(rate, args.duration)
                        log(f"{t.label}: the pool ran out; again with {need[t.key, c]:,} tokens")
                        run = revoke_run(t, args.duration, need[t.key, c], work, c)
                    t.runs.setdefault(c, []).append(run)
    return targets


def revocation_report(args: argparse.Namespace, targets: list[Target]) -> list[str]:
    stats = summarize(targets)
    lines = [
        "## Revocation (RFC 7009)",
        "",
        f"{args.rounds} round(s) of {args.duration:g} s, interleaved; medians; concurrency "
        f"{' and '.join(map(str, REVOCATION_CONCURRENCY))}. Every request revokes a live "
        "access token of its own "
        "(client_secret_post, token_type_hint=access_token) from a pool minted just before "
        f"the run, sized at {REVOCATION_HEADROOM:g}x what a warm-up's rate needs; 'reused' "
        "counts requests past the pool's end (a second revocation of a token), which a sized "
        "pool keeps at 0. Keyturn revokes its JWTs (record marked revoked, deny-list row), "
        "the peer its opaque tokens (deleted from its in-memory adapter). Afterwards "
        "revoked tokens introspect as inactive on each server, and an unsent one as active. "
        "vs peer = revocations/s / the peer's, same run.",
        "",
        "| alg | server | conc. | revocations/s | p50 ms | p99 ms | pool | reused | vs peer |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for alg in args.algs:
        for t in (t for t in targets if t.alg == alg):
            if t.unavailable:
                why = " ".join(t.unavailable.replace("|", "/").split())
                lines.append(f"| {alg} | {t.label} | | {why} | | | | | |")
                continue
            for c in REVOCATION_CONCURRENCY:
                s = stats.get((alg, t.key, c))
                runs = t.runs.get(c, [])
                if s is None:
                    continue
                peer_s = stats.get((alg, "peer", c))
                vs_peer = s["rps"] / peer_s["rps"] if peer_s and peer_s["rps"] > 0 else None
                err = f" ({int(s['errors'])} errors)" if s["errors"] else ""
                pool = median([r["pool"] for r in runs])
                reused = sum(r["reused"] for r in runs)
                lines.append(
                    f"| {alg} | {t.label} | {c} | {fmt_rate(s['rps'])}{err} | {fmt_ms(s['p50'])} | "
                    f"{fmt_ms(s['p99'])} | {pool:,.0f} | {reused:,.0f} | "
                    f"{'—' if t.key == 'peer' else fmt_ratio(vs_peer)} |"
                )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Keyturn token issuance vs node-oidc-provider and the signing limit."
    )
    parser.add_argument("--quick", action="store_true", help="one short round (about 2 minutes)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 5; quick 2)")
    parser.add_argument("--algs", nargs="+", choices=ALGS, default=list(ALGS))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("KEYTURN_BENCH_PG", PG_DEFAULT),
        help="database to drop and recreate per run (default %(default)s)",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument(
        "--no-async-commit",
        action="store_true",
        help="skip the PostgreSQL row with synchronous_commit=off (concurrency 1)",
    )
    parser.add_argument("--no-workers2", action="store_true", help="skip the --workers 2 rows")
    parser.add_argument("--no-overheads", action="store_true", help="skip SDK/guard overheads")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run Keyturn from this src/ directory (before/after A/B)",
    )
    parser.add_argument(
        "--introspection",
        action="store_true",
        help="also measure RFC 7662 introspection vs the peer's (about 2 minutes per alg)",
    )
    parser.add_argument(
        "--guard",
        action="store_true",
        help="also measure the guard in a Starlette API, with and without it and vs PyJWT "
        "(benchmarks/guard.py: about 3 minutes, 1 with --quick)",
    )
    parser.add_argument(
        "--cold-start",
        action="store_true",
        help="also measure launch to first token (benchmarks/cold_start.py: about 2 minutes, "
        "1 with --quick; with --baseline-src, that tree's too)",
    )
    parser.add_argument(
        "--revocation",
        action="store_true",
        help="also measure RFC 7009 revocations/s at concurrency 1 and 16 vs the peer's "
        "(each on a fresh token; about 3 minutes per alg, 5 with --baseline-src)",
    )
    parser.add_argument(
        "--table-growth",
        action="store_true",
        help="also measure cost with table size: empty vs pre-loaded table, disk per token, "
        "purge (benchmarks/table_growth.py: about 12 minutes at 1,000,000 rows, 3 with --quick)",
    )
    parser.add_argument(
        "--table-growth-rows", type=int, help="--table-growth's table size (default 1,000,000)"
    )
    parser.add_argument(
        "--no-issuance",
        action="store_true",
        help="skip issuance, signing and overheads (e.g. with --introspection alone)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    sign_seconds = 0.5 if args.quick else 1.0
    warmup = 1.0

    started = time.monotonic()
    have_wrk = shutil.which("wrk") is not None
    if not have_wrk:
        log("wrk is not installed (apt-get install wrk): the issuance rows are skipped")
    all_targets: list[Target] = []
    introspection: list[Target] = []
    revocation: list[Target] = []
    signing: dict[tuple[str, str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="keyturn-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for alg in args.algs if args.introspection and have_wrk else ():
            introspection += measure_introspection(args, alg, tmp, warmup)
        for alg in args.algs if args.revocation and have_wrk else ():
            revocation += measure_revocation(args, alg, tmp)
        for alg in () if args.no_issuance else args.algs:
            signers = signing_functions(alg)
            with servers(args, alg, tmp) if have_wrk else nullservers() as targets:
                all_targets += targets
                live = [t for t in targets if not t.unavailable]
                for t in live:
                    wrk(t, 16, warmup)  # warm caches, connection pools and the JIT of node
                for r in range(args.rounds):
                    log(f"{alg}: round {r + 1}/{args.rounds}")
                    for conc in CONCURRENCY:
                        order = live if r % 2 == 0 else list(reversed(live))
                        for t in order:
                            if conc in t.concurrency:
                                t.runs.setdefault(conc, []).append(wrk(t, conc, args.duration))
                    for lib, fn in signers.items():
                        for threads in (1, 2):
                            rate = signing_rate(fn, threads, sign_seconds)
                            signing.setdefault((alg, lib, threads), []).append(rate)
            if not have_wrk:
                for _ in range(args.rounds):
                    for lib, fn in signers.items():
                        for threads in (1, 2):
                            rate = signing_rate(fn, threads, sign_seconds)
                            signing.setdefault((alg, lib, threads), []).append(rate)
    overheads: list[tuple[str, dict[str, Any]]] = []
    for name, path in () if args.no_issuance else OVERHEAD_SCRIPTS:
        if args.no_overheads:
            overheads.append((name, {"status": "skipped (--no-overheads)", "lines": []}))
            continue
        log(f"running {path.name}")
        overheads.append((name, run_overhead(path, args.quick)))

    guard = run_guard(args) if args.guard and have_wrk else None
    args.out.mkdir(parents=True, exist_ok=True)
    cold_start = run_cold_start(args) if args.cold_start else None
    table_growth = run_table_growth(args) if args.table_growth and have_wrk else None

    elapsed = time.monotonic() - started
    report, data = build_report(args, all_targets, signing, overheads, elapsed)
    if guard is not None:
        report += "\n## Guard: a Starlette API with and without BearerAuthMiddleware\n\n"
        report += guard[0]
        data["guard"] = guard[1]
    if args.introspection:
        report = "\n".join(introspection_report(args, introspection)) + "\n" + report
        data["introspection"] = [
            {"alg": a, "target": k, "concurrency": c, **v}
            for (a, k, c), v in summarize(introspection).items()
        ]
        data["introspection_raw_runs"] = {f"{t.alg}/{t.key}": t.runs for t in introspection}
    if cold_start is not None:
        report = cold_start[0] + "\n" + report
        data["cold_start"] = cold_start[1]
    if table_growth is not None:
        report = table_growth[0] + "\n" + report
        data["table_growth"] = table_growth[1]
    if args.revocation:
        report = "\n".join(revocation_report(args, revocation)) + "\n" + report
        data["revocation"] = [
            {"alg": a, "target": k, "concurrency": c, **v}
            for (a, k, c), v in summarize(revocation).items()
        ]
        data["revocation_raw_runs"] = {f"{t.alg}/{t.key}": t.runs for t in revocation}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / "results.md").write_text(report)
    (args.out / f"results-{stamp}.md").write_text(report)
    (args.out / "results.json").write_text(json.dumps(data, indent=2, default=str))
    chart_note = (
        None
        if args.no_issuance
        else draw_chart(args.out / "issuance.png", args, all_targets, signing)
    )
    sys.stdout.write(report)
    sys.stdout.write(
        f"\nWritten: {args.out / 'results.md'}, {args.out / 'results.json'}"
        + ("" if chart_note or args.no_issuance else f", {args.out / 'issuance.png'}")
        + "\n"
    )
    if chart_note:
        sys.stdout.write(chart_note + "\n")
    return 0


@contextmanager
def nullservers() -> Iterator[list[Target]]:
    yield []


if __name__ == "__main__":
    raise SystemExit(main())
