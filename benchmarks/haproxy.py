"""Issuance through HAProxy: 1 backend vs 2, and what the balancer itself costs.

    python benchmarks/haproxy.py              # 3 interleaved rounds of 5 s per cell
    python benchmarks/haproxy.py --quick      # 1 round of 2 s

Two ``keyturn serve`` processes (one worker each, the shipped defaults) share
one PostgreSQL database, one pepper and one client. Two HAProxy processes run
``deploy/haproxy.cfg`` unchanged: one whose two server lines both name process
A (one backend), one with A and B (two backends). wrk (``benchmarks/token.lua``)
posts client-credentials token requests, in its own process, to three targets:

* **direct** -- process A, no balancer;
* **LB, 1 backend** -- HAProxy in front of A;
* **LB, 2 backends** -- HAProxy in front of A and B.

Targets are measured interleaved, round after round, at 16 and 64
connections; each figure is the median over the rounds, and the ratios compare
figures of the same run: *2 backends / 1 backend* is how issuance scales with a
second process behind the balancer, *LB / direct* (1 backend) is the
balancer's own cost. Every process here listens on 127.0.0.1, every load run
has a fixed duration, and everything started is stopped at the end. On a
machine with few cores, wrk, HAProxy, PostgreSQL and the servers share them:
the scaling ratio is then bounded by the cores, not by Keyturn (the report
prints the core count).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from run import (
    AUDIENCE,
    PG_DEFAULT,
    SCOPE,
    Target,
    check_token,
    free_port,
    keyturn_env,
    log,
    median,
    reset_postgres,
    stop_process,
    wait_ready,
    wrk,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
CONCURRENCY = (16, 64)
KEYTURN = [sys.executable, "-m", "keyturn.cli"]


@dataclass
class Cell:
    target: str
    connections: int
    runs: list[dict[str, float]] = field(default_factory=list)


def start_backend(name: str, env: dict[str, str], tmp: Path) -> Target:
    port = free_port()
    target = Target(key=name, label=name, alg=env["KEYTURN_SIGNING_ALG"])
    target.url = f"http://127.0.0.1:{port}"
    target.log_path = tmp / f"{name}.log"
    with target.log_path.open("wb") as out:
        target.process = subprocess.Popen(
            [*KEYTURN, "serve", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    wait_ready(target, "/readyz")
    return target


def start_haproxy(name: str, servers: list[Target], tmp: Path) -> Target:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env["KEYTURN_LB_BIND"] = f"127.0.0.1:{port}"
    env["KEYTURN_LB_SOCKET"] = str(tmp / f"{name}.sock")
    for i, server in enumerate(servers, 1):
        env[f"KEYTURN_BACKEND_{i}"] = server.url.removeprefix("http://")
    target = Target(key=name, label=name, alg=servers[0].alg)
    target.url = f"http://127.0.0.1:{port}"
    target.log_path = tmp / f"{name}.log"
    with target.log_path.open("wb") as out:
        target.process = subprocess.Popen(
            ["haproxy", "-f", str(HAPROXY_CFG), "-db"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    wait_ready(target, "/readyz")
    time.sleep(2.5)  # both servers through `rise 2` of 1 s checks
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s per cell")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 5)")
    parser.add_argument("--alg", default="RS256", choices=["RS256", "ES256", "EdDSA"])
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("KEYTURN_BENCH_PG", PG_DEFAULT.replace("bench", "bench_lb")),
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    duration = args.duration or (2.0 if args.quick else 5.0)
    for tool in ("wrk", "haproxy"):
        if shutil.which(tool) is None:
            log(f"{tool} is not installed (apt-get install {tool}): nothing to measure")
            return 1
    problem = reset_postgres(args.postgres_url)
    if problem:
        log(f"no PostgreSQL: {problem}")
        return 1

    with tempfile.TemporaryDirectory(prefix="keyturn-lb-bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        env = keyturn_env(tmp, args.postgres_url, args.alg, secrets.token_hex(32), None)
        env["KEYTURN_FORWARDED_ALLOW_IPS"] = "127.0.0.1"  # as behind a balancer
        created = subprocess.run(
            [*KEYTURN, "clients", "create", "--json", "--name", "bench", "--rate-limit", "0",
             "--scope", SCOPE, "--audience", AUDIENCE],
            env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        client = json.loads(created.stdout)
        body = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
                "scope": SCOPE,
                "resource": AUDIENCE,
            }
        )
        started: list[Target] = []
        stack.callback(lambda: [stop_process(t.process) for t in reversed(started)])
        a = start_backend("keyturn-a", env, tmp)
        started.append(a)
        b = start_backend("keyturn-b", env, tmp)
        started.append(b)
        lb1 = start_haproxy("haproxy-1-backend", [a, a], tmp)
        started.append(lb1)
        lb2 = start_haproxy("haproxy-2-backends", [a, b], tmp)
        started.append(lb2)
        targets = {"direct": a, "lb1": lb1, "lb2": lb2}
        for target in targets.values():
            target.body = body
            check_token(target)
            wrk(target, 16, 1.0)  # warm pools, caches and keep-alive connections
        cells = {(k, c): Cell(k, c) for k in targets for c in CONCURRENCY}
        for r in range(rounds):
            for conc in CONCURRENCY:
                for key, target in targets.items():
                    run = wrk(target, conc, duration)
                    cells[key, conc].runs.append(run)
                    log(f"round {r + 1}/{rounds} c={conc} {key}: {run['rps']:.0f} tokens/s")

    report = render(cells, rounds, duration, args.alg)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "haproxy.md").write_text(report)
    raw = {f"{k}-c{c}": cell.runs for (k, c), cell in cells.items()}
    (RESULTS / "haproxy.json").write_text(json.dumps(raw, indent=2))
    return 0


def render(cells: dict[tuple[str, int], Cell], rounds: int, duration: float, alg: str) -> str:
    def med(key: str, conc: int, what: str) -> float:
        return median([run[what] for run in cells[key, conc].runs])

    names = {"direct": "direct (1 process)", "lb1": "HAProxy, 1 backend",
             "lb2": "HAProxy, 2 backends"}  # fmt: skip
    lines = [
        f"Issuance through HAProxy on PostgreSQL ({alg}): {rounds} interleaved round(s) of "
        f"{duration:g} s per cell; medians. {os.cpu_count()} CPU(s) shared by wrk, HAProxy, "
        "PostgreSQL and the servers.",
        "",
        "| target | connections | tokens/s | rounds' range | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for conc in CONCURRENCY:
        for key, name in names.items():
            errors = sum(run["errors"] for run in cells[key, conc].runs)
            rates = [run["rps"] for run in cells[key, conc].runs]
            lines.append(
                f"| {name} | {conc} | {med(key, conc, 'rps'):.0f} "
                f"| {min(rates):.0f}-{max(rates):.0f} | {med(key, conc, 'p50'):.1f} "
                f"| {med(key, conc, 'p99'):.1f} | {errors:.0f} |"
            )
    lines += ["", "| ratio | 16 connections | 64 connections |", "|---|---:|---:|"]
    scale = [med("lb2", c, "rps") / med("lb1", c, "rps") for c in CONCURRENCY]
    cost = [med("lb1", c, "rps") / med("direct", c, "rps") for c in CONCURRENCY]
    added = [med("lb1", c, "p50") - med("direct", c, "p50") for c in CONCURRENCY]

    def row(label: str, values: list[float], form: str) -> str:
        return f"| {label} | " + " | ".join(format(v, form) for v in values) + " |"

    lines.append(row("2 backends / 1 backend (tokens/s)", scale, ".2f"))
    lines.append(row("HAProxy / direct, 1 backend (tokens/s)", cost, ".2f"))
    lines.append(row("HAProxy - direct, 1 backend (p50 ms)", added, "+.2f"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
