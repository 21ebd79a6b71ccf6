"""Cost as the token table grows: throughput, disk per token, and the purge.

    python benchmarks/table_growth.py                   # 1,000,000 rows, about 12 minutes
    python benchmarks/table_growth.py --quick           # 100,000 rows, about 3 minutes
    python benchmarks/table_growth.py --rows 10000000   # the big run (about 40 minutes)
    python benchmarks/table_growth.py --src /tmp/old/src  # the servers from another tree

For SQLite and PostgreSQL, two Keyturn servers run side by side: one on an
empty token table, one on a table pre-loaded with ``--rows`` tokens of the
last seven days (the purge's retention, so the steady state of a real server)
plus ``--purge-rows`` dead ones older than that, the purge's backlog. The rows
are written through the driver (``executemany`` on SQLite, ``COPY`` on
PostgreSQL), not over HTTP, in issuance order and in the shape real rows
have: time-ordered 26-character ids, keyed hashes (22 characters for access
tokens, 64 for the others), 8-character key ids, 20 clients,
5,000 users, client-credentials and user-grant access tokens, refresh-token
families (most rotated, so consumed), revocations, a new signing key every
two weeks.

1. **Throughput**: token issuance (client credentials) and introspection (a
   pool of 50 of the server's own live tokens) at concurrency 16 with wrk,
   interleaved round after round across all four servers; medians, and the
   ratio of the loaded table to the empty one of the same run.
2. **Disk per token**: SQLite's pages per B-tree (``dbstat``), PostgreSQL's
   ``pg_relation_size`` per index and ``pg_table_size``, divided by the rows.
3. **Purge**: the loaded server purges its backlog through the admin API
   (``POST /admin/v1/tokens/purge``: ``token_service.purge``, batch after
   batch with a rest between batches, in the server process, as its purge
   loop does, without the loop's minute between rounds); the time it takes,
   and the p50/p99 of token requests at c=16 in 3-second windows while it
   runs against windows before and after it.
4. **Admin listings** on the loaded table: a page of ``GET /admin/v1/tokens``
   by the busiest client, by a user, and both, timed (no target; context for
   any index change).

Everything runs on loopback; the SQLite files live in a temporary directory
and the PostgreSQL databases (``keyturn_tg_<pid>_*``) are dropped at the end.
The servers' own purge loops are kept idle (a day's interval), so the tables
hold what was loaded until the measured purge. ``--src DIR`` runs the servers
from another ``src/`` tree (for a before/after of a change: ``git archive REV
src | tar -x -C DIR``), whose migrations make the tables; the rows are loaded
with this tree's columns, so the two trees must share the token table's.
Output: the Markdown tables, ``table_growth.md`` and ``table_growth.json`` in
``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from run import (  # noqa: E402
    AUDIENCE,
    PG_DEFAULT,
    SCOPE,
    Target,
    check_introspection,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    http,
    keyturn_env,
    log,
    median,
    prepare_introspection,
    reset_postgres,
    start_keyturn,
    stop_process,
    wrk,
)

from keyturn.core.jose import KID_CHARS  # noqa: E402
from keyturn.server.secrets import SHORT_HASH_BYTES  # noqa: E402
from keyturn.storage.token_writer import COLUMNS  # noqa: E402

RESULTS = HERE / "results"
CONCURRENCY = 16
RETENTION = 7 * 24 * 3600  # the default KEYTURN_PURGE_RETENTION
ACCESS_LIFETIME = 5 * 3600  # the default access-token lifetime
REFRESH_LIFETIME = 30 * 24 * 3600
CLIENTS = 20
USERS = 5000
KEY_PERIOD = 14 * 86400
PURGE_WINDOW = 3.0
CHUNK = 50_000
MODES = ("issuance", "introspection")


# -- synthetic rows ------------------------------------------------------------
@dataclass(frozen=True)
class RowFormat:
    """How long a row's key id and an access token's keyed hash are."""

    kid_chars: int
    short_access_hash: bool  # 128 bits in base64url (22), else 256 in hex (64)


THIS_TREE = RowFormat(KID_CHARS, short_access_hash=True)
BEFORE_SHORT_ROWS = RowFormat(43, short_access_hash=False)
"""Rows as Keyturn wrote them before 8-character kids and short access-token hashes."""


def token_id(ms: int, rng: random.Random) -> str:
    """Like ``secrets.generate_token_id``: 48 bits of ms, 80 random, base32hex, lower."""
    raw = ((ms << 80) | rng.getrandbits(80)).to_bytes(16, "big")
    return base64.b32hexencode(raw).decode().rstrip("=").lower()


@dataclass
class Population:
    """Who the synthetic tokens belong to: clients, users and signing keys."""

    clients: list[str]
    users: list[str]
    kids: list[str]

    @classmethod
    def make(cls, rng: random.Random, fmt: RowFormat = THIS_TREE) -> Population:
        def urlsafe(n: int) -> str:
            return base64.urlsafe_b64encode(rng.randbytes(n)).decode().rstrip("=")

        return cls(
            clients=[urlsafe(16) for _ in range(CLIENTS)],  # 22 characters, as created
            users=["usr_" + urlsafe(12) for _ in range(USERS)],
            kids=[urlsafe(32)[: fmt.kid_chars] for _ in range(8)],  # as the key ring's
        )

    def kid(self, issued: int) -> str:
        """The key that signed at ``issued``: a new one every two weeks."""
        return self.kids[issued // KEY_PERIOD % len(self.kids)]


def synthetic_rows(
    count: int,
    start: int,
    end: int,
    pop: Population,
    rng: random.Random,
    fmt: RowFormat = THIS_TREE,
) -> Iterator[tuple[Any, ...]]:
    """``count`` rows issued from ``start`` to ``end`` (Unix seconds), in that order.

    80 % client-credentials access tokens (subject = client), 10 % user-grant
    access tokens, 10 % refresh tokens, two thirds of them consumed by their
    rotation (revoked); 1 % of access tokens revoked. Access tokens are signed
    by a new key every two weeks.
    """
    audience = json.dumps([AUDIENCE])
    span = max(1, end - start)
    families: list[tuple[str, str, str, str, int]] = []  # family, parent, client, user, auth
    for i in range(count):
        issued = start + span * i // count
        tid = token_id(issued * 1000 + rng.randrange(1000), rng)
        kid: str | None = pop.kid(issued)
        pick = rng.random()
        revoked: int | None = None
        family = parent = auth_time = None
        client = pop.clients[int(rng.paretovariate(1.2)) % CLIENTS]
        if pick < 0.8:
            kind, grant, subject, expires = (
                "access_token",
                "client_credentials",
                client,
                ACCESS_LIFETIME,
            )
            if rng.random() < 0.01:
                revoked = issued + rng.randrange(ACCESS_LIFETIME)
        else:
            if families and rng.random() < 0.7:
                family, parent, client, subject, auth_time = families[rng.randrange(len(families))]
                grant = "refresh_token"
            else:
                family, subject = token_id(issued * 1000, rng), rng.choice(pop.users)
                auth_time, grant = issued, "authorization_code"
            if pick < 0.9:
                kind, expires = "access_token", ACCESS_LIFETIME
            else:
                kind, expires, kid = "refresh_token", REFRESH_LIFETIME, None
                if rng.random() < 2 / 3:
                    revoked = min(end, issued + rng.randrange(ACCESS_LIFETIME))
                families.append((family, tid, client, subject, auth_time))
                if len(families) > 2000:
                    families.pop(0)
        mac = f"{rng.getrandbits(256):064x}"  # one draw in either format: the same rows
        if kind == "access_token" and fmt.short_access_hash:
            short = bytes.fromhex(mac)[:SHORT_HASH_BYTES]
            mac = base64.urlsafe_b64encode(short).decode().rstrip("=")
        values = {
            "token_id": tid, "token_hash": mac, "kind": kind,
            "client_id": client, "subject": subject, "scope": SCOPE, "audience": audience,
            "grant_type": grant, "issued_at": issued, "expires_at": issued + expires,
            "revoked_at": revoked if revoked is not None and revoked <= end else None,
            "family_id": family, "parent_id": parent, "kid": kid, "auth_time": auth_time,
        }  # fmt: skip
        yield tuple(values[c] for c in COLUMNS)


def dead_and_live(args: argparse.Namespace, now: int, pop: Population) -> Iterator[tuple[Any, ...]]:
    """The backlog (dead for longer than the retention) first, then the last seven days."""
    rng = random.Random(args.seed)
    old_end = now - RETENTION - REFRESH_LIFETIME - 3600  # every row dead before the cutoff
    backlog = synthetic_rows(args.purge_rows, old_end - 7 * 86400, old_end, pop, rng)
    for row in backlog:
        if (
            row[COLUMNS.index("revoked_at")] is None
            and row[COLUMNS.index("kind")] != "access_token"
        ):
            row = _revoked(row, row[COLUMNS.index("issued_at")] + 60)
        yield row
    yield from synthetic_rows(args.rows, now - RETENTION + 3600, now - 60, pop, rng)


def _revoked(row: tuple[Any, ...], at: int) -> tuple[Any, ...]:
    out = list(row)
    out[COLUMNS.index("revoked_at")] = at
    return tuple(out)


CLIENT_COLUMNS = (
    "client_id", "name", "is_public", "grant_types", "scopes", "audiences",
    "redirect_uris", "auth_methods", "can_introspect", "allow_plain_pkce",
    "created_at", "updated_at",
)  # fmt: skip


def client_rows(pop: Population, now: int) -> list[tuple[Any, ...]]:
    """The synthetic clients (no secret: they never authenticate), for the foreign key."""
    return [
        (c, f"synthetic {i}", False, '["client_credentials","authorization_code"]',
         f'["{SCOPE}"]', f'["{AUDIENCE}"]', "[]", '["client_secret_basic"]',
         False, False, now, now)
        for i, c in enumerate(pop.clients)
    ]  # fmt: skip


# -- loading -------------------------------------------------------------------
def chunks(rows: Iterator[tuple[Any, ...]], size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_sqlite(path: Path, rows: Iterator[tuple[Any, ...]], clients: list[tuple[Any, ...]]) -> int:
    """Append through sqlite3 in transactions of `CHUNK` rows, every index in place."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute("PRAGMA synchronous=OFF")  # this connection only: a benchmark file
    cols = ", ".join(CLIENT_COLUMNS)
    conn.executemany(
        f"INSERT INTO clients ({cols}) VALUES ({', '.join('?' * len(CLIENT_COLUMNS))})",
        clients,
    )
    sql = f"INSERT INTO tokens ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    total = 0
    for batch in chunks(rows):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
        total += len(batch)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return total


def pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def load_postgres(url: str, rows: Iterator[tuple[Any, ...]], clients: list[tuple[Any, ...]]) -> int:
    """COPY in chunks of `CHUNK` rows, every index in place; then VACUUM ANALYZE,
    the state autovacuum would reach on its own a little later."""
    import asyncpg  # type: ignore[import-untyped]

    async def work() -> int:
        conn = await asyncpg.connect(pg_dsn(url))
        try:
            await conn.copy_records_to_table("clients", records=clients, columns=CLIENT_COLUMNS)
            total = 0
            for batch in chunks(rows):
                await conn.copy_records_to_table("tokens", records=batch, columns=COLUMNS)
                total += len(batch)
            await conn.execute("VACUUM ANALYZE tokens")
            return total
        finally:
            await conn.close()

    return asyncio.run(work())


# -- disk use --------------------------------------------------------------------
def sqlite_disk(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = int(conn.execute("SELECT count(*) FROM tokens").fetchone()[0])
        parts = dict(
            conn.execute(
                "SELECT name, SUM(pgsize) FROM dbstat WHERE name = 'tokens' OR name IN "
                "(SELECT name FROM sqlite_schema WHERE tbl_name = 'tokens') GROUP BY name"
            ).fetchall()
        )
    finally:
        conn.close()
    size = path.stat().st_size + sum(
        p.stat().st_size for p in (path.with_name(path.name + "-wal"),) if p.exists()
    )
    return {"rows": rows, "parts": parts, "file_bytes": size}


def postgres_disk(url: str) -> dict[str, Any]:
    import asyncpg

    async def work() -> dict[str, Any]:
        conn = await asyncpg.connect(pg_dsn(url))
        try:
            rows = int(await conn.fetchval("SELECT count(*) FROM tokens"))
            parts = {"tokens": int(await conn.fetchval("SELECT pg_table_size('tokens')"))}
            for rec in await conn.fetch(
                "SELECT indexrelid::regclass::text AS name, pg_relation_size(indexrelid) AS size "
                "FROM pg_index WHERE indrelid = 'tokens'::regclass"
            ):
                parts[rec["name"]] = int(rec["size"])
            total = int(await conn.fetchval("SELECT pg_total_relation_size('tokens')"))
            return {"rows": rows, "parts": parts, "file_bytes": total}
        finally:
            await conn.close()

    return asyncio.run(work())


# -- servers -------------------------------------------------------------------
@dataclass
class Backend:
    name: str  # "sqlite" / "postgres"
    label: str
    empty: Target
    loaded: Target
    url: dict[str, str] = field(default_factory=dict)  # target key -> database URL
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    loaded_rows: int = 0
    load_seconds: float = 0.0
    disk: dict[str, Any] = field(default_factory=dict)
    purge: dict[str, Any] = field(default_factory=dict)
    runs: dict[tuple[str, str], list[dict[str, float]]] = field(default_factory=dict)
    listings: dict[str, dict[str, float]] = field(default_factory=dict)
    admin_token: str = ""
    unavailable: str | None = None


def start(backend: Backend, t: Target, tmp: Path, args: argparse.Namespace) -> None:
    pepper = secrets.token_hex(32)
    if backend.name == "postgres":
        base = args.postgres_url.rsplit("/", 1)[0]
        url = f"{base}/keyturn_tg_{os.getpid()}_{t.key.rsplit('-', 1)[1]}"
        why = reset_postgres(url)
        if why:
            raise RuntimeError(why)
    else:
        url = f"sqlite+aiosqlite:///{tmp / f'{t.alg}-{t.key}' / 'keyturn.db'}"
    backend.url[t.key] = url
    extra = {"KEYTURN_PEPPER": pepper, "KEYTURN_PURGE_INTERVAL": "86400"}
    backend.env[t.key] = {
        **keyturn_env(tmp / f"{t.alg}-{t.key}", url, t.alg, pepper, args.src),
        **extra,
    }
    start_keyturn(t, tmp=tmp, database_url=url, workers=1, src=args.src, extra_env=extra)


def drop_postgres(urls: list[str]) -> None:
    import asyncpg

    async def work() -> None:
        for url in urls:
            parts = urllib.parse.urlsplit(pg_dsn(url))
            name = parts.path.lstrip("/")
            if not re.fullmatch(r"keyturn_tg_\d+_[a-z]+", name):
                continue
            admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
            conn = await asyncpg.connect(admin, timeout=5)
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            finally:
                await conn.close()

    asyncio.run(work())


def load(backend: Backend, args: argparse.Namespace, pop: Population) -> None:
    now = int(time.time())
    rows = dead_and_live(args, now, pop)
    clients = client_rows(pop, now)
    url = backend.url[backend.loaded.key]
    log(f"{backend.label}: loading {args.rows + args.purge_rows:,} rows")
    t0 = time.monotonic()
    if backend.name == "sqlite":
        path = Path(url.split(":///", 1)[1])
        backend.loaded_rows = load_sqlite(path, rows, clients)
    else:
        backend.loaded_rows = load_postgres(url, rows, clients)
    backend.load_seconds = time.monotonic() - t0
    log(f"{backend.label}: {backend.loaded_rows:,} rows in {backend.load_seconds:.0f} s")


def measure_disk(backend: Backend) -> None:
    url = backend.url[backend.loaded.key]
    if backend.name == "sqlite":
        backend.disk = sqlite_disk(Path(url.split(":///", 1)[1]))
    else:
        backend.disk = postgres_disk(url)


# -- purge -----------------------------------------------------------------------
def admin_token(backend: Backend) -> str:
    if backend.admin_token:
        return backend.admin_token
    t = backend.loaded
    env = backend.env[t.key]
    done = subprocess.run(
        [sys.executable, "-m", "keyturn.cli", "clients", "create", "--json", "--name", "admin",
         "--scope", "keyturn:admin"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"admin client: {done.stderr[-500:]}")
    client = json.loads(done.stdout)
    body = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client["client_id"],
         "client_secret": client["client_secret"], "scope": "keyturn:admin"}
    ).encode()  # fmt: skip
    status, raw = http("POST", t.token_url, body, timeout=30)
    if status != 200:
        raise RuntimeError(f"admin token: {status} {raw[:200]!r}")
    backend.admin_token = str(json.loads(raw)["access_token"])
    return backend.admin_token


def admin_get(url: str, token: str) -> tuple[float, int]:
    """One admin API GET: milliseconds taken and items answered."""
    import urllib.request

    assert url.startswith("http://127.0.0.1:")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as resp:
        data = json.loads(resp.read())
    return (time.perf_counter() - t0) * 1000, len(data.get("items", []))


def measure_listings(backend: Backend, pop: Population, repeat: int = 5) -> None:
    """The admin API's token listings on the loaded table (a page of 50, newest first):
    by the busiest client (alone, with its own subject, live only) and by a user alone."""
    token = admin_token(backend)
    user = pop.users[0]
    base = backend.loaded.url + "/admin/v1/tokens?limit=50&"
    queries = {
        "client_id (busiest client)": {"client_id": pop.clients[1]},
        "client_id + subject (= client)": {"client_id": pop.clients[1], "subject": pop.clients[1]},
        "subject alone (a user, few tokens)": {"subject": user},
        "client_id + active": {"client_id": pop.clients[1], "active": "true"},
    }
    for name, params in queries.items():
        runs = [admin_get(base + urllib.parse.urlencode(params), token) for _ in range(repeat)]
        backend.listings[name] = {"ms": median([r[0] for r in runs]), "items": runs[0][1]}


def purge_via_admin(url: str, token: str) -> tuple[float, int]:
    """``POST /admin/v1/tokens/purge``: seconds taken and rows purged."""
    import urllib.request

    assert url.startswith("http://127.0.0.1:")
    req = urllib.request.Request(
        url + "/admin/v1/tokens/purge", data=b"", method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=3600) as resp:
        data = json.loads(resp.read())
    return time.monotonic() - t0, int(data["purged"])


def measure_purge(backend: Backend, windows: int) -> None:
    t = backend.loaded
    token = admin_token(backend)
    before = [wrk(t, CONCURRENCY, PURGE_WINDOW) for _ in range(windows)]
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["seconds"], result["purged"] = purge_via_admin(t.url, token)
        except Exception as exc:  # reported below
            result["error"] = repr(exc)

    thread = threading.Thread(target=run)
    log(f"{backend.label}: purging")
    thread.start()
    during = []
    while thread.is_alive():
        run_ = wrk(t, CONCURRENCY, PURGE_WINDOW)
        if thread.is_alive():  # a window wholly inside the purge
            during.append(run_)
    thread.join()
    if "error" in result:
        raise RuntimeError(f"purge failed: {result['error']}")
    after = [wrk(t, CONCURRENCY, PURGE_WINDOW) for _ in range(windows)]
    quiet = before + after
    backend.purge = {
        **result,
        "rows_per_s": result["purged"] / result["seconds"],
        "quiet": quiet,
        "during": during,
    }
    log(f"{backend.label}: purged {result['purged']:,} rows in {result['seconds']:.1f} s")


# -- report ------------------------------------------------------------------------
def stat(runs: list[dict[str, float]], key: str) -> float:
    return median([r[key] for r in runs])


def report(args: argparse.Namespace, backends: list[Backend], elapsed: float) -> str:
    out: list[str] = []
    add = out.append
    add("## Cost with table size")
    add("")
    add(
        f"{args.rounds} round(s) of {args.duration:g} s per cell, interleaved across the four "
        f"servers; medians; concurrency {CONCURRENCY}, {args.alg}. The loaded table holds "
        f"{args.rows:,} tokens of the last 7 days and {args.purge_rows:,} older dead ones "
        "(the purge backlog). Introspection cycles 50 of the server's own live tokens. "
        "vs empty = loaded / empty, same run (target: within 10 %, i.e. >= 0.90x)."
    )
    add("")
    add("| backend | request | empty /s | loaded /s | vs empty | p99 empty ms | p99 loaded ms |")
    add("|---|---|---:|---:|---:|---:|---:|")
    for b in backends:
        if b.unavailable:
            add(f"| {b.label} | {b.unavailable} | | | | | |")
            continue
        for mode in MODES:
            e, lo = b.runs.get(("empty", mode), []), b.runs.get(("loaded", mode), [])
            er, lr = stat(e, "rps"), stat(lo, "rps")
            add(
                f"| {b.label} | {mode} | {fmt_rate(er)} | {fmt_rate(lr)} | "
                f"{fmt_ratio(lr / er if er else None)} | {fmt_ms(stat(e, 'p99'))} | "
                f"{fmt_ms(stat(lo, 'p99'))} |"
            )
    add("")
    add("## Disk use per token")
    add("")
    add("SQLite: pages of each B-tree (dbstat); PostgreSQL: pg_table_size (heap and TOAST) "
        "and pg_relation_size of each index; divided by the rows of the loaded table.")  # fmt: skip
    add("")
    add("| backend | part | bytes/token | share |")
    add("|---|---|---:|---:|")
    for b in backends:
        if b.unavailable or not b.disk:
            continue
        rows = max(1, b.disk["rows"])
        parts = b.disk["parts"]
        total = sum(parts.values())
        for name, size in sorted(parts.items(), key=lambda kv: -kv[1]):
            add(f"| {b.label} | {name} | {size / rows:,.0f} | {100 * size / total:.0f} % |")
        add(f"| {b.label} | **total** ({rows:,} rows) | **{total / rows:,.0f}** | 100 % |")
    add("")
    add("## Admin listings on the loaded table")
    add("")
    add("GET /admin/v1/tokens, a page of 50 newest first; median of 5 requests.")
    add("")
    add("| backend | filter | ms | items |")
    add("|---|---|---:|---:|")
    for b in backends:
        for name, v in b.listings.items():
            add(f"| {b.label} | {name} | {fmt_ms(v['ms'])} | {int(v['items'])} |")
    add("")
    add("## Purge")
    add("")
    add(
        f"The loaded server purges its {args.purge_rows:,}-row backlog through the admin API "
        "(token_service.purge in the server process: batches of KEYTURN_PURGE_BATCH rows, each "
        "followed by a rest of PURGE_REST times as long as it took). Token "
        f"requests at c={CONCURRENCY} in {PURGE_WINDOW:g}-s windows: medians of the windows "
        "wholly inside the purge vs of those before and after it (target: p99 within 2x); "
        "worst = the highest p99 of any window inside the purge (a stall that the median hides)."
    )
    add("")
    add("| backend | rows purged | seconds | rows/s | tokens/s quiet / during | "
        "p50 ms quiet / during | p99 ms quiet / during | p99 ratio | worst p99 ms |")  # fmt: skip
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in backends:
        p = b.purge
        if b.unavailable or not p:
            continue
        if "error" in p:
            add(f"| {b.label} | {p['error']} | | | | | | | |")
            continue
        q, d = p["quiet"], p["during"]
        ratio = stat(d, "p99") / stat(q, "p99") if d else None
        worst = max((r["p99"] for r in d), default=float("nan"))
        add(
            f"| {b.label} | {p['purged']:,} | {p['seconds']:.1f} | {p['rows_per_s']:,.0f} | "
            f"{fmt_rate(stat(q, 'rps'))} / {fmt_rate(stat(d, 'rps'))} | "
            f"{fmt_ms(stat(q, 'p50'))} / {fmt_ms(stat(d, 'p50'))} | "
            f"{fmt_ms(stat(q, 'p99'))} / {fmt_ms(stat(d, 'p99'))} | {fmt_ratio(ratio)} | "
            f"{fmt_ms(worst)} |"
        )
    add("")
    loads = ", ".join(
        f"{b.label} {b.loaded_rows:,} rows in {b.load_seconds:.0f} s"
        for b in backends
        if not b.unavailable
    )
    add(f"Loaded: {loads}. Total run time {elapsed:.0f} s.")
    return "\n".join(out) + "\n"


# -- main --------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--rows", type=int, help="tokens of the last 7 days (default 1,000,000)")
    parser.add_argument("--purge-rows", type=int, help="dead tokens to purge (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="100,000 rows each, one round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 5; quick 3)")
    parser.add_argument("--alg", default="ES256", choices=("ES256", "RS256"))
    parser.add_argument("--postgres-url", default=os.environ.get("KEYTURN_BENCH_PG", PG_DEFAULT))
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-purge", action="store_true")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--tmp", type=Path, help="where the SQLite files go (default: $TMPDIR)")
    parser.add_argument(
        "--src", type=Path, help="run the servers from this src/ tree (default: the installed one)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    default_rows = 100_000 if args.quick else 1_000_000
    args.rows = default_rows if args.rows is None else args.rows
    args.purge_rows = default_rows if args.purge_rows is None else args.purge_rows
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (3.0 if args.quick else 5.0)
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is not installed (apt-get install wrk)\n")
        return 2

    started = time.monotonic()
    pop = Population.make(random.Random(args.seed))
    backends: list[Backend] = []
    for name, label in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        if not getattr(args, f"no_{name}"):
            backends.append(
                Backend(name, label, Target(f"{name}-empty", f"{label} empty", args.alg),
                        Target(f"{name}-loaded", f"{label} loaded", args.alg))
            )  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="keyturn-tg-", dir=args.tmp) as tmpdir,
        ExitStack() as stack,
    ):
        tmp = Path(tmpdir)
        stack.callback(
            lambda: drop_postgres(
                [u for b in backends if b.name == "postgres" for u in b.url.values()]
            )
        )
        for b in backends:
            try:
                for t in (b.empty, b.loaded):
                    start(b, t, tmp, args)
                    stack.callback(stop_process, t.process)
                load(b, args, pop)
                for t in (b.empty, b.loaded):
                    prepare_introspection(t)
            except Exception as exc:
                b.unavailable = f"could not start: {exc}"[:300]
                log(f"{b.label}: {b.unavailable}")
        live = [b for b in backends if not b.unavailable]
        targets = [(b, t) for b in live for t in (b.empty, b.loaded)]
        for _, t in targets:
            for mode in MODES:
                wrk(t, CONCURRENCY, 1.0, introspect=mode == "introspection")  # warm-up
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            for mode in MODES:
                for b, t in targets if r % 2 == 0 else list(reversed(targets)):
                    run_ = wrk(t, CONCURRENCY, args.duration, introspect=mode == "introspection")
                    b.runs.setdefault((t.key.rsplit("-", 1)[1], mode), []).append(run_)
        for _, t in targets:
            check_introspection(t)  # still active: the runs measured real answers
        for b in live:
            log(f"{b.label}: disk use, admin listings")
            measure_disk(b)
            try:
                measure_listings(b, pop)
            except Exception as exc:
                b.listings = {}
                log(f"{b.label}: listings failed: {exc}")
        for b in [] if args.no_purge else live:
            try:
                measure_purge(b, windows=2 if args.quick else 3)
            except Exception as exc:
                b.purge = {"error": f"{exc}"[:300]}
                log(f"{b.label}: {b.purge['error']}")
        args.out.mkdir(parents=True, exist_ok=True)
        for _, t in targets:  # for a look after the run
            if t.log_path is not None and t.log_path.exists():
                shutil.copy(t.log_path, args.out / f"table_growth-{t.key}.log")
        elapsed = time.monotonic() - started
        text = report(args, backends, elapsed)
    data = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "backends": [
            {
                "backend": b.name,
                "unavailable": b.unavailable,
                "loaded_rows": b.loaded_rows,
                "load_seconds": b.load_seconds,
                "disk": b.disk,
                "purge": b.purge,
                "listings": b.listings,
                "runs": {f"{key}/{mode}": runs for (key, mode), runs in b.runs.items()},
            }
            for b in backends
        ],
        "elapsed_s": elapsed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table_growth.md").write_text(text)
    (args.out / "table_growth.json").write_text(json.dumps(data, indent=2))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
