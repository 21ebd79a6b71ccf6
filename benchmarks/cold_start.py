"""Cold start: how long ``keyturn serve`` takes from launch to its first token.

    python benchmarks/cold_start.py                          # 7 interleaved rounds, ~1-2 min
    python benchmarks/cold_start.py --baseline-src /tmp/old/src --rounds 9

Each round launches, in turn (reversed every other round, so background load
hits them alike), a fresh ``keyturn serve`` process on a free loopback port
with ``--log-level warning`` and a new copy of its data directory, and stops it
once measured:

* **migrated** -- the data directory of a server that has run before: schema
  at head, a signing key, one client (made once per tree by ``keyturn clients
  create``, then copied for every launch). The clock runs from the launch until
  the first ``client_credentials`` token request is answered 200: what a
  restarted server costs its clients.
* **fresh** -- an empty data directory: the server must migrate the database
  and create its first signing key. No client can exist yet, so the clock runs
  until ``/readyz`` first answers 200 (the moment a client could be served).

Polling is every 10 ms on one kept-idle thread, so it adds at most that.
Beside the plain launches, the same launches run again with ``python -X
importtime``; their **import phase** is the sum of the cumulative times of the
top-level imports the process reported before the clock stopped (stdlib and
Keyturn's own modules included; importtime's own overhead makes it a little
larger than in a plain launch). Each figure is the median of the rounds.

Baselines measured in the same run: ``--baseline-src DIR`` (another ``src/``
tree, e.g. ``git worktree add /tmp/old HEAD~3``), and node-oidc-provider
(``benchmarks/peer/server.mjs``, in-memory, JWT access tokens, same algorithm)
from ``node`` launch to its first token, when Node and the peer's modules are
installed. Ratios are Keyturn's time divided by the baseline's (below 1 is
faster). Results: the table on stdout, raw numbers in ``--out``/cold_start.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # `run` below, also when a test imports this file
from run import free_port, log, median, stop_process  # noqa: E402

ROOT = HERE.parent
PEER_DIR = HERE / "peer"
SCOPE = "read"
AUDIENCE = "https://api.bench.test"
POLL = 0.01
TIMEOUT = 60.0
MODES = ("migrated", "fresh")


def request(port: int, method: str, path: str, body: str | None = None) -> int | None:
    """The status of one loopback request, or None while nothing listens."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    try:
        conn.request(method, path, body=body, headers=headers)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


class ImportLog:
    """Reads ``-X importtime`` lines from a pipe as they come, with their arrival time."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[tuple[float, str]] = []
        self.other: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("import time:"):
                self.lines.append((time.monotonic(), line))
            else:
                self.other.append(line)

    def seconds_before(self, moment: float) -> float:
        """Sum of the top-level imports' cumulative times reported before ``moment``."""
        total_us = 0
        for at, line in self.lines:
            if at > moment:
                break
            parts = line.split("|")
            if len(parts) != 3 or not parts[1].strip().isdigit():
                continue  # the header line
            name = parts[2][1:]  # one space after the bar; nested imports have more
            if not name.startswith(" "):
                total_us += int(parts[1])
        return total_us / 1e6

    def join(self) -> None:
        self._thread.join(timeout=5)


@dataclass
class Variant:
    """One server to launch: a Keyturn tree, or the peer."""

    key: str
    label: str
    src: Path | None = None  # a Keyturn src/ tree; None for the peer
    template: Path | None = None  # the migrated data directory to copy
    env: dict[str, str] = field(default_factory=dict)
    token_body: str = ""
    runs: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    unavailable: str | None = None

    @property
    def modes(self) -> tuple[str, ...]:
        return ("migrated",) if self.src is None else MODES


def keyturn_env(src: Path, data_dir: Path, pepper: str, alg: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(
        KEYTURN_DATA_DIR=str(data_dir),
        KEYTURN_PEPPER=pepper,
        KEYTURN_SIGNING_ALG=alg,
        PYTHONPATH=str(src) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def prepare_keyturn(variant: Variant, tmp: Path, alg: str) -> None:
    """A migrated data directory with one client, made once by this tree's own CLI."""
    assert variant.src is not None
    template = tmp / f"{variant.key}-template"
    template.mkdir()
    pepper = secrets.token_hex(32)
    env = keyturn_env(variant.src, template, pepper, alg)
    done = subprocess.run(
        [sys.executable, "-m", "keyturn.cli", "clients", "create", "--json", "--name", "cold",
         "--rate-limit", "0", "--scope", SCOPE, "--audience", AUDIENCE],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"keyturn clients create failed: {done.stderr[-1000:]}")
    client = json.loads(done.stdout)
    variant.template = template
    variant.env = env
    variant.token_body = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client["client_id"],
         "client_secret": client["client_secret"], "scope": SCOPE, "resource": AUDIENCE}
    )  # fmt: skip


def launch_once(
    variant: Variant, mode: str, tmp: Path, alg: str, *, importtime: bool
) -> dict[str, float]:
    """Launch, poll until served, stop: seconds to first token (or ready), import phase."""
    port = free_port()
    if variant.src is None:  # the peer
        secret = secrets.token_urlsafe(32)
        cmd = ["node", "server.mjs", "--port", str(port), "--alg", alg, "--client-id", "bench",
               f"--client-secret={secret}", "--scope", SCOPE, "--audience", AUDIENCE]  # fmt: skip
        env, cwd, path = dict(os.environ), PEER_DIR, "/token"
        body: str | None = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": "bench", "client_secret": secret,
             "scope": SCOPE, "resource": AUDIENCE}
        )  # fmt: skip
    else:
        data_dir = tmp / f"run-{secrets.token_hex(4)}"
        if mode == "migrated":
            assert variant.template is not None
            shutil.copytree(variant.template, data_dir)
            path, body = "/oauth/token", variant.token_body
        else:
            path, body = "/readyz", None
        env = dict(variant.env, KEYTURN_DATA_DIR=str(data_dir))
        env["KEYTURN_ISSUER"] = f"http://127.0.0.1:{port}"
        python = [sys.executable, *(["-X", "importtime"] if importtime else [])]
        cmd = [*python, "-m", "keyturn.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]  # fmt: skip
        cwd = tmp
    method = "POST" if body else "GET"
    started = time.monotonic()
    process = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    imports = ImportLog(process.stderr)
    try:
        while True:
            status = request(port, method, path, body)
            if status == 200:
                served = time.monotonic()
                break
            if process.poll() is not None or time.monotonic() - started > TIMEOUT:
                tail = "\n".join(imports.other[-20:])
                raise RuntimeError(f"{variant.label} ({mode}) did not serve; answered {status}; "
                                   f"stderr:\n{tail}")  # fmt: skip
            time.sleep(POLL)
    finally:
        stop_process(process)
        imports.join()
        if variant.src is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
    result = {"seconds": served - started}
    if importtime:
        result["imports"] = imports.seconds_before(served)
    return result


def peer_unavailable() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
        return "the peer's modules are not installed (npm install in benchmarks/peer)"
    return None


def summarize(variants: list[Variant]) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = {}
    for v in variants:
        for mode, runs in v.runs.items():
            plain = [r["seconds"] for r in runs if "imports" not in r]
            timed = [r for r in runs if "imports" in r]
            out[(v.key, mode)] = {
                "seconds": median(plain),
                "imports": median([r["imports"] for r in timed]),
                "seconds_importtime": median([r["seconds"] for r in timed]),
                "rounds": float(len(plain)),
            }
    return out


def ms(value: float) -> str:
    return "n/a" if value != value else f"{value * 1000:,.0f}"


def ratio(a: float, b: float | None) -> str:
    return "n/a" if b is None or a != a or b != b or b <= 0 else f"{a / b:.2f}x"


def report(args: argparse.Namespace, variants: list[Variant]) -> str:
    stats = summarize(variants)
    base = next((v for v in variants if v.key == "baseline" and not v.unavailable), None)
    peer = next((v for v in variants if v.key == "peer" and not v.unavailable), None)
    lines = [
        "## Cold start: launch to first token",
        "",
        f"{args.rounds} interleaved round(s), medians; {args.alg}; one process "
        "(`keyturn serve --log-level warning`). migrated: to the first client_credentials "
        "token (200); fresh: empty data directory, to the first `/readyz` 200 (migrations and "
        "the first key included; no client can exist yet). Import phase: top-level imports "
        "under `-X importtime` before that moment. Ratios: time / the baseline's (< 1 is faster).",
        "",
        "| server | data dir | to first token ms | import phase ms | vs baseline | vs peer |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for v in variants:
        if v.unavailable:
            lines.append(f"| {v.label} | - | {v.unavailable} | | | |")
            continue
        for mode in v.modes:
            s = stats[(v.key, mode)]
            b = stats.get(("baseline", mode)) if base and v.key != "baseline" else None
            p = stats.get(("peer", "migrated")) if peer and v.key != "peer" else None
            what = "to ready" if mode == "fresh" else ""
            lines.append(
                f"| {v.label} | {mode} | {ms(s['seconds'])}{' ' + what if what else ''} | "
                f"{ms(s['imports']) if v.src else '—'} | "
                f"{ratio(s['seconds'], b['seconds']) if b else '—'} | "
                f"{ratio(s['seconds'], p['seconds']) if p else '—'} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--alg", choices=("RS256", "ES256"), default="RS256")
    parser.add_argument("--baseline-src", type=Path, help="also launch Keyturn from this src/")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 3

    variants = [Variant("keyturn", "Keyturn", src=ROOT / "src")]
    if args.baseline_src:
        variants.append(Variant("baseline", "Keyturn baseline", src=args.baseline_src.resolve()))
    if not args.no_peer:
        variants.append(
            Variant("peer", "node-oidc-provider (peer)", unavailable=peer_unavailable())
        )
    with tempfile.TemporaryDirectory(prefix="keyturn-cold-") as tmpdir:
        tmp = Path(tmpdir)
        for v in variants:
            if v.src is not None:
                try:
                    prepare_keyturn(v, tmp, args.alg)
                except Exception as exc:
                    v.unavailable = f"could not prepare: {exc}"[:300]
        live = [v for v in variants if not v.unavailable]
        plan: list[tuple[Variant, str, bool]] = [
            (v, mode, importtime)
            for v in live
            for mode in v.modes
            for importtime in ((False, True) if v.src is not None else (False,))
        ]
        for v, mode, importtime in plan:  # a first launch of each, not counted: warm caches
            launch_once(v, mode, tmp, args.alg, importtime=importtime)
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            for v, mode, importtime in plan if r % 2 == 0 else list(reversed(plan)):
                run = launch_once(v, mode, tmp, args.alg, importtime=importtime)
                v.runs.setdefault(mode, []).append(run)
    text = report(args, variants)
    args.out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "alg": args.alg,
        "rounds": args.rounds,
        "summary": [{"target": k, "mode": m, **s} for (k, m), s in summarize(variants).items()],
        "raw_runs": {v.key: v.runs for v in variants},
        "unavailable": {v.key: v.unavailable for v in variants if v.unavailable},
    }
    (args.out / "cold_start.json").write_text(json.dumps(data, indent=2, default=str))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
