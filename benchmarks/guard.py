"""What the guard costs a real API: throughput with and without it, and against PyJWT.

    python benchmarks/guard.py            # 3 interleaved rounds of 3 s, c=16 and c=1, ~3 min
    python benchmarks/guard.py --quick    # 1 round of 2 s, c=16 only, about half a minute

A trivial Starlette API (one JSON route) runs under uvicorn, each variant in its
own process on a free loopback port, for RS256 and ES256:

* **no auth** -- the app alone (wrk still sends a token, which nobody reads);
* **guard, reused tokens** -- `keyturn.guard.starlette.BearerAuthMiddleware`
  with a default `TokenVerifier`; clients reuse a pool of 50 tokens, as the SDK
  reuses one token per client for its whole life;
* **guard, fresh tokens** -- the same middleware and verifier, where no token
  comes back while the verifier still remembers it (below);
* **PyJWT, fresh tokens** -- a pure ASGI middleware on PyJWT doing the same
  checks: ``typ`` (at+jwt), the key by ``kid`` from the same JWKS (PyJWT's
  own `PyJWKClient`, fetched before the first request), the signature,
  ``iss``, ``aud``, ``exp``/``iat`` with the same 10 s leeway, and that
  ``sub`` and ``jti`` are present.

"Fresh" is a pool of 10,000 pre-signed tokens cycled from where the previous
run stopped (signing a new token for each of the ~100,000 requests would take
minutes of RSA). The verifier remembers the 4,096 most recently used tokens (its
default, read from its signature here). One wrk thread sends the pool in order
(one thread drives more than one uvicorn process answers, and a second would
take a core from the server), so between two uses of a token the server sees
the 9,999 others, less at most the 16 left in flight when a run stops: the
token has long been forgotten, and every request is a full verification --
parse, signature, claims, and the insert into the memory that evicts another
token -- what a fresh token costs. The memory stays on, so its cost is in
those rows. The smoke test records the order wrk really sends and replays it
on `VerifiedTokens` to show that it never hits.

Beside requests/s, each run reads the server process's CPU time (user +
system, /proc) per request. On a shared machine it moves less than throughput,
so its ratios are printed too, with the CPU time the middleware adds to a
request: a hit (reused), a miss (fresh) and PyJWT's.

Server CPU per request also moves with how well the server batches (a slower
variant wakes more often per request), so the run also times the middleware
alone, in this process with no socket (`inprocess_costs`): each variant wrapped
around an ASGI app that does nothing, called directly, against that app bare.
That gives what a hit, a miss and PyJWT's check cost in µs, medians of
interleaved rounds, and the ratio a hit would leave if it cost the server only
that: no-auth CPU / (no-auth CPU + hit).

The public keys come from a JWKS served on 127.0.0.1 by this process; nothing
leaves the loopback. wrk (``benchmarks/guard.lua``) runs in its own process for
a fixed time; variants are measured interleaved, round after round, reversed
every other round; each figure is the median over the rounds and the ratios
compare figures of one run: reused / no auth (target >= 0.8 at c=16) and
fresh guard / PyJWT (target >= 1.0 at c=16). Every answer must be a 200; a
non-2xx answer or a socket error makes the run fail. Every process started here
is stopped at the end.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # `run` below, also when a test imports this file
from run import free_port, log, median, stop_process  # noqa: E402

RESULTS = HERE / "results"
LUA = HERE / "guard.lua"
ISSUER = "https://auth.bench.test"  # a name only: keys come from the loopback JWKS
AUDIENCE = "https://api.bench.test"
ALGS = ("RS256", "ES256")
LEEWAY = 10.0  # TokenVerifier's default, given to PyJWT too
VARIANTS = {
    "noauth": "no auth",
    "reused": "guard, 50 reused tokens",
    "fresh": "guard, fresh tokens",
    "pyjwt": "PyJWT, fresh tokens",
}
REUSED_POOL = 50
FRESH_POOL = 10_000
WRK_THREADS = 1  # see above: the fresh pool's order relies on it
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
Costs = dict[str, dict[str, float]]  # alg -> what `inprocess_costs` measured


def verified_cache_size() -> int:
    """The default size of the verifier's memory, which the fresh pool must outrun."""
    from keyturn.guard import TokenVerifier

    size: int = inspect.signature(TokenVerifier).parameters["verified_cache_size"].default
    return size


# -- the API under test (run in its own process with --serve) ----------------------
def build_app(variant: str, alg: str, jwks_uri: str) -> Any:
    """The trivial API, with the variant's middleware (or none)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def data(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    middleware: list[Middleware] = []
    if variant in ("reused", "fresh"):
        from keyturn.guard import TokenVerifier
        from keyturn.guard.starlette import BearerAuthMiddleware

        verifier = TokenVerifier(ISSUER, AUDIENCE, algorithms=[alg], jwks_uri=jwks_uri)
        middleware.append(Middleware(BearerAuthMiddleware, verifier=verifier))
    elif variant == "pyjwt":
        middleware.append(Middleware(PyJWTMiddleware, jwks_uri=jwks_uri, alg=alg))
    elif variant != "noauth":
        raise ValueError(f"unknown variant {variant!r}")
    return Starlette(routes=[Route("/data", data)], middleware=middleware)


class PyJWTMiddleware:
    """Bearer-token checks with PyJWT, as an API without Keyturn's guard would write them."""

    def __init__(self, app: Any, *, jwks_uri: str, alg: str) -> None:
        import jwt

        self.app = app
        self.alg = alg
        self.jwks = jwt.PyJWKClient(jwks_uri)
        self.jwks.get_jwk_set()  # before the first request: no blocking fetch in the loop

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import jwt
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise jwt.InvalidTokenError("no bearer token")
            header = jwt.get_unverified_header(token)
            typ = header.get("typ")
            if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
                raise jwt.InvalidTokenError("not an access token")
            key = self.jwks.get_signing_key(header.get("kid", ""))
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[self.alg],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError:
            response = JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["access_token"] = claims
        await self.app(scope, receive, send)


def serve(variant: str, alg: str, port: int, jwks_uri: str) -> None:
    import uvicorn

    app = build_app(variant, alg, jwks_uri)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- keys, tokens and the JWKS ----------------------------------------------------
def make_key(alg: str) -> Any:
    from joserfc.jwk import ECKey, RSAKey

    params: Any = {"kid": f"bench-{alg}", "alg": alg, "use": "sig"}
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=params)
    return ECKey.generate_key("P-256", parameters=params)


def sign_tokens(key: Any, alg: str, count: int) -> list[str]:
    """``count`` RFC 9068 access tokens, as Keyturn issues them (signed on every core)."""
    from joserfc import jws

    header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    now = int(time.time())

    def one(i: int) -> str:
        claims = {
            "iss": ISSUER, "sub": f"user-{i}", "aud": AUDIENCE, "client_id": f"client-{i % 50}",
            "scope": "read", "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex,
        }  # fmt: skip
        payload = json.dumps(claims, separators=(",", ":"))
        return jws.serialize_compact(header, payload, key, algorithms=[alg])

    # OpenSSL releases the GIL while it signs, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, range(count), chunksize=256))


@contextmanager
def jwks_server(documents: dict[str, bytes]) -> Iterator[str]:
    """Serve ``documents`` (path -> JSON) on a free loopback port; yield its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- servers and load --------------------------------------------------------------
@dataclass
class Server:
    variant: str
    alg: str
    tokens: Path  # the pool wrk sends
    pool_size: int
    url: str = ""
    offset: int = 0  # where the next wrk run starts in the pool
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    runs: dict[int, list[dict[str, float]]] = field(default_factory=dict)


def get(url: str, token: str | None) -> int:
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def start(server: Server, jwks_uri: str, tmp: Path) -> None:
    port = free_port()
    server.url = f"http://127.0.0.1:{port}/data"
    server.log_path = tmp / f"{server.alg}-{server.variant}.log"
    with server.log_path.open("wb") as out:
        server.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", server.variant,
             "--alg", server.alg, "--port", str(port), "--jwks-uri", jwks_uri],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def check(server: Server, token: str, timeout: float = 60.0) -> None:
    """Wait until it answers a good token with 200; then make sure a bad one is refused."""
    assert server.process is not None
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.variant} ({server.alg}) exited; log: {server.log_path}")
        with suppress(OSError):
            status = get(server.url, token)
            if status == 200:
                break
            raise RuntimeError(f"{server.variant} ({server.alg}) answered a good token {status}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.variant} ({server.alg}) not ready; log: {server.log_path}")
        time.sleep(0.2)
    i = len(token) - 10  # inside the signature
    tampered = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
    refused = 200 if server.variant == "noauth" else 401
    for bad in (None, tampered):
        status = get(server.url, bad)
        if status != refused:
            raise RuntimeError(
                f"{server.variant} ({server.alg}) answered {status} to a bad token, not {refused}"
            )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(server: Server, connections: int, duration: float) -> dict[str, float]:
    """One wrk run from where the last stopped: requests/s (all 200s), p50/p99 in ms, and
    the server's CPU time per request in µs (robust to other load on a shared machine)."""
    pid = server.process.pid if server.process is not None else -1
    threads = WRK_THREADS
    whole = max(1, round(duration))  # wrk takes whole seconds
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{whole}s", "--timeout", "10s",
        "-s", str(LUA), server.url,
    ]  # fmt: skip
    env = dict(
        os.environ,
        BENCH_TOKENS=str(server.tokens),
        BENCH_THREADS=str(threads),
        BENCH_OFFSET=str(server.offset),
    )
    cpu_before = cpu_seconds(pid)
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    cpu = cpu_seconds(pid) - cpu_before
    match = re.search(r"^WRKJSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    data = json.loads(match.group(1))
    server.offset = (server.offset + threads * data["sent_max"]) % server.pool_size
    errors = data["connect"] + data["read"] + data["write"] + data["status"] + data["timeout"]
    if errors:
        raise RuntimeError(
            f"{server.variant} ({server.alg}): {errors} errors in {data['requests']} requests "
            f"(non-2xx {data['status']}); log: {server.log_path}"
        )
    seconds = data["duration_us"] / 1e6
    return {
        "rps": data["requests"] / seconds,
        "p50": data["p50_us"] / 1000.0,
        "p99": data["p99_us"] / 1000.0,
        "requests": float(data["requests"]),
        "cpu_us": cpu * 1e6 / max(1, data["requests"]),
    }


# -- the middleware alone, in-process ------------------------------------------------------
INPROCESS_CALLS = {"miss": 4_000, "pyjwt": 4_000}  # per round; 20,000 for the cheap others


def inprocess_costs(
    alg: str, jwks_uri: str, reused: list[str], fresh: list[str], *, rounds: int
) -> dict[str, float]:
    """µs each variant's middleware adds to a request: hit, miss (guard) and PyJWT's miss.

    Each wraps an ASGI app that does nothing and is called directly, one request
    after another, as uvicorn would call it; the bare app's own time is
    subtracted. The fresh pool is cycled in order, so (being more than twice the
    verifier's memory) no token is recalled; every middleware is warmed first.
    """
    import asyncio

    from keyturn.guard import TokenVerifier
    from keyturn.guard.starlette import BearerAuthMiddleware

    async def nothing(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    def scopes(tokens: list[str]) -> list[dict[str, Any]]:
        base = {
            "type": "http", "method": "GET", "path": "/data", "raw_path": b"/data",
            "query_string": b"", "root_path": "", "http_version": "1.1", "scheme": "http",
            "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 40000),
        }  # fmt: skip
        return [
            base | {"headers": [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer " + t)]}
            for t in (token.encode() for token in tokens)
        ]

    async def run() -> dict[str, float]:
        verifiers = [
            TokenVerifier(ISSUER, AUDIENCE, algorithms=[alg], jwks_uri=jwks_uri) for _ in range(2)
        ]
        # Its JWKS fetch blocks: off the loop, as the JWKS server answers from this process.
        pyjwt = await asyncio.to_thread(PyJWTMiddleware, nothing, jwks_uri=jwks_uri, alg=alg)
        hit, miss = (BearerAuthMiddleware(nothing, verifier=v) for v in verifiers)
        cases = {
            "bare": (nothing, scopes(reused)),
            "hit": (hit, scopes(reused)),
            "miss": (miss, scopes(fresh)),
            "pyjwt": (pyjwt, scopes(fresh)),
        }
        cursor = dict.fromkeys(cases, 0)  # where in its pool each case goes on

        async def calls(name: str, count: int) -> float:
            app, pool = cases[name]
            start = cursor[name]
            began = time.perf_counter()
            for i in range(start, start + count):
                await app(dict(pool[i % len(pool)]), receive, send)
            cursor[name] = (start + count) % len(pool)
            return (time.perf_counter() - began) * 1e6 / count

        for name, (_, pool) in cases.items():  # JWKS fetched, the memory filled
            await calls(name, len(pool) if name != "pyjwt" else 100)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name in cases:
                times[name].append(await calls(name, INPROCESS_CALLS.get(name, 20_000)))
        for verifier in verifiers:
            await verifier.aclose()
        bare = median(times.pop("bare"))
        return {"bare": bare} | {name: max(0.0, median(v) - bare) for name, v in times.items()}

    return asyncio.run(run())


# -- the run ---------------------------------------------------------------------------
@dataclass
class Plan:
    algs: Sequence[str]
    concurrency: Sequence[int]
    rounds: int
    duration: int  # seconds: wrk takes whole ones
    warmup: int
    fresh_pool: int = FRESH_POOL
    inprocess_rounds: int = 5


def measure(plan: Plan, tmp: Path) -> tuple[list[Server], Costs]:
    """Every variant of every alg, interleaved round by round: the servers with their runs,
    and each alg's in-process costs (`inprocess_costs`, measured once its servers stop)."""
    cache = verified_cache_size()
    if plan.fresh_pool <= 2 * cache:
        raise SystemExit(
            f"the fresh pool ({plan.fresh_pool}) must be more than twice the verifier's "
            f"memory ({cache}), or fresh tokens would be remembered"
        )
    keys = {alg: make_key(alg) for alg in plan.algs}
    documents = {
        f"/{alg}/jwks.json": json.dumps({"keys": [key.as_dict(private=False)]}).encode()
        for alg, key in keys.items()
    }
    measured: list[Server] = []
    costs: Costs = {}
    with jwks_server(documents) as base:
        for alg in plan.algs:
            started = time.monotonic()
            reused = tmp / f"{alg}-reused.tokens"
            reused.write_text("\n".join(sign_tokens(keys[alg], alg, REUSED_POOL)) + "\n")
            fresh = tmp / f"{alg}-fresh.tokens"
            fresh.write_text("\n".join(sign_tokens(keys[alg], alg, plan.fresh_pool)) + "\n")
            log(f"{alg}: signed {REUSED_POOL} + {plan.fresh_pool} tokens "
                f"in {time.monotonic() - started:.1f} s")  # fmt: skip
            pools = {"noauth": reused, "reused": reused, "fresh": fresh, "pyjwt": fresh}
            servers = [
                Server(v, alg, pools[v], plan.fresh_pool if pools[v] is fresh else REUSED_POOL)
                for v in VARIANTS
            ]
            with ExitStack() as stack:
                for server in servers:
                    start(server, f"{base}/{alg}/jwks.json", tmp)
                    stack.callback(stop_process, server.process)
                probe = reused.read_text().split("\n", 1)[0]
                for server in servers:
                    check(server, probe)
                    wrk(server, 16, plan.warmup)  # imports, JWKS and caches warm
                for r in range(plan.rounds):
                    for conc in plan.concurrency:
                        order = servers if r % 2 == 0 else servers[::-1]
                        for server in order:
                            run = wrk(server, conc, plan.duration)
                            server.runs.setdefault(conc, []).append(run)
                            log(f"{alg} round {r + 1}/{plan.rounds} c={conc} "
                                f"{server.variant}: {run['rps']:.0f} req/s")  # fmt: skip
            measured += servers
            costs[alg] = inprocess_costs(
                alg,
                f"{base}/{alg}/jwks.json",
                reused.read_text().split(),
                fresh.read_text().split(),
                rounds=plan.inprocess_rounds,
            )
            log(f"{alg} in-process: " + ", ".join(f"{k} {v:.1f} µs" for k, v in costs[alg].items()))
    return measured, costs


def runs_of(servers: list[Server], alg: str, variant: str, conc: int) -> list[dict[str, float]]:
    server = next(s for s in servers if s.alg == alg and s.variant == variant)
    return server.runs.get(conc, [])


def ratios(servers: list[Server], alg: str, conc: int) -> dict[str, Any]:
    """The two targets' ratios (of the medians, and each round's), and the same by CPU time."""

    def med(variant: str, what: str) -> float:
        return median([run[what] for run in runs_of(servers, alg, variant, conc)])

    def per_round(top: str, bottom: str) -> list[float]:
        tops, bottoms = runs_of(servers, alg, top, conc), runs_of(servers, alg, bottom, conc)
        return [a["rps"] / b["rps"] for a, b in zip(tops, bottoms, strict=True)]

    cpu = {v: med(v, "cpu_us") for v in VARIANTS}
    return {
        "reused_vs_noauth": med("reused", "rps") / med("noauth", "rps"),
        "fresh_vs_pyjwt": med("fresh", "rps") / med("pyjwt", "rps"),
        "fresh_vs_noauth": med("fresh", "rps") / med("noauth", "rps"),
        "reused_vs_noauth_rounds": per_round("reused", "noauth"),
        "fresh_vs_pyjwt_rounds": per_round("fresh", "pyjwt"),
        # Throughput one core would give, from the server's own CPU time per request:
        # what the other load on a shared machine moves least.
        "cpu_reused_vs_noauth": cpu["noauth"] / cpu["reused"],
        "cpu_fresh_vs_pyjwt": cpu["pyjwt"] / cpu["fresh"],
        "cpu_us": cpu,
        "added_cpu_us": {v: cpu[v] - cpu["noauth"] for v in ("reused", "fresh", "pyjwt")},
    }


def span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "n/a"


def noauth_cpu(servers: list[Server], alg: str, conc: int) -> float:
    """The no-auth server's CPU µs per request (median over the rounds)."""
    return median([run["cpu_us"] for run in runs_of(servers, alg, "noauth", conc)])


def ceiling(servers: list[Server], costs: Costs, alg: str, conc: int) -> float:
    """reused / no auth if a hit cost the server only its in-process time."""
    noauth = noauth_cpu(servers, alg, conc)
    return noauth / (noauth + costs[alg]["hit"])


def render(servers: list[Server], plan: Plan, costs: Costs) -> str:
    lines = [
        f"Guard throughput: a one-route Starlette API under uvicorn, one process per variant; "
        f"{plan.rounds} interleaved round(s) of {plan.duration:g} s per cell, medians. "
        f"{os.cpu_count()} CPU(s), shared with wrk (and with whatever else runs). "
        "CPU µs/req: the server process's user+system time per request.",
        "",
        "| alg | variant | conc. | req/s | rounds' range | p50 ms | p99 ms | CPU µs/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for alg in plan.algs:
        for conc in plan.concurrency:
            for server in (s for s in servers if s.alg == alg):
                runs = server.runs.get(conc, [])
                rates = [run["rps"] for run in runs]
                lines.append(
                    f"| {alg} | {VARIANTS[server.variant]} | {conc} | {median(rates):,.0f} "
                    f"| {min(rates):,.0f}-{max(rates):,.0f} "
                    f"| {median([run['p50'] for run in runs]):.2f} "
                    f"| {median([run['p99'] for run in runs]):.2f} "
                    f"| {median([run['cpu_us'] for run in runs]):.0f} |"
                )
    lines += [
        "",
        "| alg | conc. | reused / no auth | rounds | fresh / PyJWT | rounds | fresh / no auth "
        "| by CPU: reused / no auth | by CPU: fresh / PyJWT "
        "| CPU µs added: reused, fresh, PyJWT |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for alg in plan.algs:
        for conc in plan.concurrency:
            q = ratios(servers, alg, conc)
            added = q["added_cpu_us"]
            lines.append(
                f"| {alg} | {conc} | {q['reused_vs_noauth']:.2f} "
                f"| {span(q['reused_vs_noauth_rounds'])} | {q['fresh_vs_pyjwt']:.2f} "
                f"| {span(q['fresh_vs_pyjwt_rounds'])} | {q['fresh_vs_noauth']:.2f} "
                f"| {q['cpu_reused_vs_noauth']:.2f} | {q['cpu_fresh_vs_pyjwt']:.2f} "
                f"| {added['reused']:.0f}, {added['fresh']:.0f}, {added['pyjwt']:.0f} |"
            )
    concs = plan.concurrency
    lines += [
        "",
        f"The middleware alone, in-process (no socket; medians of {plan.inprocess_rounds} "
        "interleaved rounds): µs it adds to a request, and reused / no auth if a hit cost "
        "the server only that.",
        "",
        "| alg | bare app µs | hit µs | miss µs | PyJWT µs | miss / PyJWT "
        + "".join(f"| c={c}: no-auth CPU µs | c={c}: reused / no auth, ceiling " for c in concs)
        + "|",
        "|---|---:|---:|---:|---:|---:" + "|---:|---:" * len(concs) + "|",
    ]
    for alg in plan.algs:
        cost = costs[alg]
        row = (
            f"| {alg} | {cost['bare']:.1f} | {cost['hit']:.1f} | {cost['miss']:.1f} "
            f"| {cost['pyjwt']:.1f} | {cost['miss'] / cost['pyjwt']:.2f} "
        )
        for conc in plan.concurrency:
            row += f"| {noauth_cpu(servers, alg, conc):.0f} "
            row += f"| {ceiling(servers, costs, alg, conc):.2f} "
        lines.append(row + "|")
    if 16 in plan.concurrency:
        lines.append("")
        for alg in plan.algs:
            q = ratios(servers, alg, 16)
            a, b = q["reused_vs_noauth"], q["fresh_vs_pyjwt"]
            lines.append(
                f"- {alg}, c=16: reused / no auth {a:.2f} (target >= 0.8: "
                f"{'met' if a >= 0.8 else 'NOT met'}; median of the rounds' own ratios "
                f"{median(q['reused_vs_noauth_rounds']):.2f}; a hit's in-process cost leaves "
                f"{ceiling(servers, costs, alg, 16):.2f}); fresh / PyJWT {b:.2f} (target >= 1.0: "
                f"{'met' if b >= 1.0 else 'NOT met'})."
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s at c=16 only")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 3; quick 2)")
    parser.add_argument("--algs", nargs="+", choices=ALGS, default=list(ALGS))
    parser.add_argument("--concurrency", nargs="+", type=int, help="default 16 1; quick 16")
    parser.add_argument(
        "--inprocess-rounds", type=int, help="rounds of the in-process timing (default 5; quick 2)"
    )
    parser.add_argument("--fresh-pool", type=int, default=FRESH_POOL, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--serve", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--alg", default="RS256", choices=ALGS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--jwks-uri", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:  # one API process under test
        serve(args.serve, args.alg, args.port, args.jwks_uri)
        return 0
    if shutil.which("wrk") is None:
        log("wrk is not installed (apt-get install wrk): nothing to measure")
        return 1
    plan = Plan(
        algs=args.algs,
        concurrency=args.concurrency or ([16] if args.quick else [16, 1]),
        rounds=args.rounds or (1 if args.quick else 3),
        duration=args.duration or (2 if args.quick else 3),
        warmup=1,
        fresh_pool=args.fresh_pool,
        inprocess_rounds=args.inprocess_rounds or (2 if args.quick else 5),
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="keyturn-guard-bench-") as tmp:
        servers, costs = measure(plan, Path(tmp))
    took = time.monotonic() - started
    report = render(servers, plan, costs) + f"\nTotal run time {took:.0f} s.\n"
    sys.stdout.write(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "guard.md").write_text(report)
    raw = {
        "runs": {f"{s.alg}/{s.variant}/c{c}": runs for s in servers for c, runs in s.runs.items()},
        "ratios": {
            f"{alg}/c{c}": ratios(servers, alg, c) | {"ceiling": ceiling(servers, costs, alg, c)}
            for alg in plan.algs
            for c in plan.concurrency
        },
        "inprocess_us": costs,
    }
    (args.out / "guard.json").write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
