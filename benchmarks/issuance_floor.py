"""Issuance against its own floor: the same stack, nothing but a durable, signed token.

    python benchmarks/issuance_floor.py                      # 3 interleaved rounds of 4 s, ~3 min
    python benchmarks/issuance_floor.py --quick              # 1 round of 2 s, ~1 min
    python benchmarks/issuance_floor.py --database postgres  # the same on PostgreSQL
    python benchmarks/issuance_floor.py --no-peer            # without Node.js

Why: target 3 of issue 18 asks issuance for 1.2x node-oidc-provider at
concurrency 16 and 64. "Keyturn vs the peer" says how fast Keyturn is, not how
fast a token request could be on this stack with the work Keyturn must do and
the peer does not (a durable record of every token). This run puts two floors
beside Keyturn and the peer, measured in one run, as
``introspection_floor.py`` does for introspection:

1. **bare app**: an ASGI app with a fixed answer and no work, served as Keyturn
   is (uvicorn, uvloop, httptools, `KeyturnHttpProtocol`; introspection_floor's
   `bare_app`): the HTTP floor.
2. **the exact minimum** (`ExactIssuance`): a hand-written ASGI app on that
   stack doing only what Keyturn's ``client_credentials`` answer needs, on the
   database file a real Keyturn server made: read the body, split the form,
   authenticate the client with one HMAC-SHA-256 of its secret under the
   pepper, check the grant type, scope and resource against the client, build
   the claims, sign them with Keyturn's own `Signer` (ES256, inline as Keyturn
   signs it), hash the signing input, and record the token's row in the same
   table before answering, committed as Keyturn commits it. On SQLite
   (`SqliteRows`) the rows of one turn of the event loop share one commit, on
   the loop, and every ~1,024 WAL pages one goes to a thread whose connection
   checkpoints, as `SqliteTokenWriter` does. On PostgreSQL (`PostgresRows`,
   ``--database postgres``) one kept asyncpg connection has one write out at a
   time, and the rows asked meanwhile go together in the next, as
   `TokenRecorder` and `AsyncpgTokenWriter` do.
3. **Keyturn** (``keyturn serve``, one worker) on that database.
4. **node-oidc-provider** (in memory, JWT access tokens, same algorithm), as
   run.py starts it.

Before any load the minimum must issue a token that Keyturn itself introspects
as active, with the same answer fields, JWT header and claims as a token of
Keyturn's; and refuse a wrong secret (401 ``invalid_client``) and another grant
type (400 ``unsupported_grant_type``) as Keyturn does; otherwise the run fails.
wrk (benchmarks/token.lua) runs at concurrency 1, 16 and 64, the four servers
interleaved round after round (the order reversed every other round); figures
are medians over the rounds, ratios compare figures of this run, CPU is the
server process tree's (/proc) per request.

ES256 only: Keyturn signs it inline, so the minimum does the same work. RS256
signatures go to helper processes under load, which a one-process minimum
would not match without rebuilding that machinery (and RS256 issuance is bound
by signing: run.py's CPU-ceiling table). The PostgreSQL database
(``--postgres-url``) is dropped and made again, and dropped at exit.
Everything listens on 127.0.0.1, every wrk run has a fixed duration, and every
process started here (each in its own process group) and the temporary
directory are removed at exit, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import os
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from keyturn.core.errors import InvalidRequestError
from keyturn.core.jose import Signer
from keyturn.keys.jwt import decrypt_private_key
from keyturn.server.request_body import parse_form
from keyturn.server.secrets import Hasher, generate_token_id
from keyturn.storage.records import TOKEN_KIND_ACCESS, TokenRecord
from keyturn.storage.token_writer import (
    CHECKPOINT_EVERY,
    COMMIT_PAGES,
    connect_sqlite,
    insert_sql,
    token_values,
)

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # the scripts below, also when a test imports this file
from introspection_floor import (  # noqa: E402
    Receive,
    Scope,
    Send,
    add_run_arguments,
    bare_app,
    form_app,
    measure_rounds,
    run_main,
    serve,
    start_keyturn_for_floor,
    start_own,
)
from run import (  # noqa: E402
    CONCURRENCY,
    Target,
    fmt_rate,
    fmt_ratio,
    http,
    log,
    peer_unavailable,
    start_peer,
    stop_process,
    summarize,
)

SCRIPT = Path(__file__).resolve()
TOKEN_PATH = "/oauth/token"
ALG = "ES256"
LABELS = {
    "bare": "bare app, fixed answer, no work",
    "minimum": "the exact minimum",
    "keyturn": "Keyturn",
    "peer": "node-oidc-provider (JWT, in memory)",
}
CLIENT_SQL = (
    "SELECT client_id, secret_hash, auth_methods, grant_types, scopes, audiences, "
    "access_token_lifetime FROM clients"
)
KEY_SQL = (
    "SELECT kid, alg, private_key FROM signing_keys WHERE activates_at <= $1 "
    "ORDER BY activates_at DESC, created_at DESC LIMIT 1"
)
SQLITE_INSERT = insert_sql("qmark")
POSTGRES_INSERT = insert_sql("numeric")


def _error(code: str, description: str) -> bytes:
    return orjson.dumps({"error": code, "error_description": description})


AUTH_FAILED = _error("invalid_client", "client authentication failed")
BAD_FORM = _error("invalid_request", "malformed form body")
NOT_CLIENT_CREDENTIALS = _error("unsupported_grant_type", "only client_credentials here")
GRANT_NOT_ALLOWED = _error("unauthorized_client", "the client may not use this grant")
SCOPE_NOT_ALLOWED = _error("invalid_scope", "a scope the client may not ask for")
RESOURCE_NOT_ALLOWED = _error("invalid_target", "a resource the client may not ask for")


class ClientEntry(NamedTuple):
    secret_hash: str | None
    post: bool  # may authenticate with client_secret_post
    client_credentials: bool
    scopes: frozenset[str]
    audiences: tuple[str, ...]
    lifetime: int | None


def client_entries(rows: Any) -> dict[str, ClientEntry]:
    """``CLIENT_SQL``'s rows, as the minimum checks them (JSON columns as text)."""
    out = {}
    for cid, secret, methods, grants, scopes, audiences, lifetime in rows:
        out[cid] = ClientEntry(
            secret,
            "client_secret_post" in orjson.loads(methods),
            "client_credentials" in orjson.loads(grants),
            frozenset(orjson.loads(scopes)),
            tuple(orjson.loads(audiences)),
            lifetime,
        )
    return out


def signer_of(row: Any, pepper: bytes, where: str) -> Signer:
    """``KEY_SQL``'s row: the key Keyturn signs with, the newest one already active."""
    if row is None:
        raise RuntimeError(f"no active signing key in {where}")
    kid, alg, private_pem = row
    return Signer(decrypt_private_key(private_pem, pepper), alg, kid)


class SqliteRows:
    """Token rows recorded as Keyturn's `SqliteTokenWriter` records them: the rows of
    one turn of the event loop in one commit, on the loop, and every ~1,024 WAL
    pages one commit on a thread whose connection checkpoints."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        # The loop's connection never waits for the lock and never checkpoints;
        # the thread's does both (SqliteTokenWriter's two connections).
        self._inline = connect_sqlite(self._path, timeout=0.0, autocheckpoint=False)
        self._threaded = connect_sqlite(self._path, timeout=30.0, autocheckpoint=True)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="floor-writer")
        self._pages = 0
        self._pending: list[tuple[Any, ...]] = []
        self._committed: asyncio.Future[None] | None = None

    def read(self, sql: str, *args: Any) -> list[Any]:
        return self._inline.execute(sql.replace("$1", "?"), args).fetchall()

    async def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._inline.close()
        self._threaded.close()

    async def record(self, row: tuple[Any, ...]) -> None:
        """Commit ``row`` with every other row of this turn of the loop, then return."""
        self._pending.append(row)
        if self._committed is None:
            loop = asyncio.get_running_loop()
            self._committed = loop.create_future()
            loop.call_soon(self._commit, loop)
        await asyncio.shield(self._committed)

    def _commit(self, loop: asyncio.AbstractEventLoop) -> None:
        rows, self._pending = self._pending, []
        done, self._committed = self._committed, None
        assert done is not None
        self._pages += COMMIT_PAGES + len(rows)
        if self._pages < CHECKPOINT_EVERY:
            try:
                self._write(self._inline, rows)
            except sqlite3.OperationalError:  # the lock is held elsewhere: the thread waits
                pass
            except Exception as exc:  # the rows' own fault: each waiter hears of it
                done.set_exception(exc)
                return
            else:
                done.set_result(None)
                return
        self._pages = 0
        future = loop.run_in_executor(self._thread, self._write, self._threaded, rows)
        future.add_done_callback(lambda f: _settle(done, f))

    @staticmethod
    def _write(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(SQLITE_INSERT, rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


class PostgresRows:
    """Token rows recorded as Keyturn's `TokenRecorder` and `AsyncpgTokenWriter`
    record them on PostgreSQL: one kept asyncpg connection, one write out at a
    time, and the rows asked while it is out go together in the next (one
    round trip, one commit)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._open: tuple[asyncio.Future[None], list[tuple[Any, ...]]] | None = None
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str) -> PostgresRows:
        import asyncpg  # type: ignore[import-untyped]

        return cls(await asyncpg.connect(url, timeout=10))

    async def read(self, sql: str, *args: Any) -> list[Any]:
        return [tuple(r) for r in await self._conn.fetch(sql, *args)]

    async def close(self) -> None:
        await self._conn.close()

    async def record(self, row: tuple[Any, ...]) -> None:
        if self._open is None:
            self._open = (asyncio.get_running_loop().create_future(), [])
        done, rows = self._open
        rows.append(row)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        await asyncio.shield(done)

    async def _drain(self) -> None:
        try:
            while self._open is not None:
                (done, rows), self._open = self._open, None
                try:
                    if len(rows) == 1:
                        await self._conn.execute(POSTGRES_INSERT, *rows[0])
                    else:
                        await self._conn.executemany(POSTGRES_INSERT, rows)
                except Exception as exc:
                    done.set_exception(exc)
                else:
                    done.set_result(None)
        finally:
            self._writer = None


class ExactIssuance:
    """Keyturn's ``client_credentials`` answer (client_secret_post), recorded durably,
    and nothing a server adds around it: no request id, metric, lockout, rate
    limit, Starlette.

    ``answer(body)`` is the whole logic; the ASGI app (`minimal_app`) only moves
    bytes. Clients and the signing key are read once, at start
    (`on_sqlite`, `on_postgres`).
    """

    def __init__(
        self,
        rows: SqliteRows | PostgresRows,
        clients: dict[str, ClientEntry],
        signer: Signer,
        pepper: bytes,
        issuer: str,
        lifetime: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rows = rows
        self._clients = clients
        self._signer = signer
        self._hasher = Hasher(pepper)
        self._issuer = issuer
        self._lifetime = lifetime
        self._clock = clock

    @classmethod
    def on_sqlite(
        cls, path: str | Path, pepper: bytes, issuer: str, lifetime: int
    ) -> ExactIssuance:
        rows = SqliteRows(path)
        clients = client_entries(rows.read(CLIENT_SQL))
        keys = rows.read(KEY_SQL, int(time.time()))
        return cls(rows, clients, signer_of(keys[0] if keys else None, pepper, str(path)),
                   pepper, issuer, lifetime)  # fmt: skip

    @classmethod
    async def on_postgres(
        cls, url: str, pepper: bytes, issuer: str, lifetime: int
    ) -> ExactIssuance:
        rows = await PostgresRows.connect(url)
        clients = client_entries(await rows.read(CLIENT_SQL))
        keys = await rows.read(KEY_SQL, int(time.time()))
        return cls(rows, clients, signer_of(keys[0] if keys else None, pepper, url),
                   pepper, issuer, lifetime)  # fmt: skip

    async def close(self) -> None:
        await self.rows.close()

    async def answer(self, body: bytes) -> tuple[int, bytes]:
        """HTTP status and JSON body for a token request's form body."""
        try:  # Keyturn's own form split
            params = parse_form(body)
        except InvalidRequestError:
            return 400, BAD_FORM
        client_id = params.get("client_id")
        secret = params.get("client_secret")
        if not client_id or secret is None:
            return 401, AUTH_FAILED
        client = self._clients.get(client_id)
        actual = self._hasher.hash(secret)  # the one HMAC of the request's secret
        if client is None or not client.post or not client.secret_hash:
            return 401, AUTH_FAILED
        if not hmac.compare_digest(actual, client.secret_hash):
            return 401, AUTH_FAILED
        if params.get("grant_type") != "client_credentials":
            return 400, NOT_CLIENT_CREDENTIALS
        if not client.client_credentials:
            return 400, GRANT_NOT_ALLOWED
        requested = params.get("scope")
        scopes = requested.split() if requested else sorted(client.scopes)
        if not client.scopes.issuperset(scopes):
            return 400, SCOPE_NOT_ALLOWED
        resource = params.get("resource")
        audience = (resource,) if resource else client.audiences
        if resource and resource not in client.audiences:
            return 400, RESOURCE_NOT_ALLOWED
        now = int(self._clock())
        lifetime = client.lifetime or self._lifetime
        jti = generate_token_id()
        scope = " ".join(scopes)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": client_id,
            "aud": audience[0] if len(audience) == 1 else list(audience),
            "client_id": client_id,
            "iat": now,
            "exp": now + lifetime,
            "jti": jti,
        }
        if scope:
            claims["scope"] = scope
        signing_input = self._signer.signing_input(claims)
        token = self._signer.complete(signing_input)
        record = TokenRecord(
            token_id=jti,
            token_hash=self._hasher.short_hash(signing_input.decode("ascii")),
            kind=TOKEN_KIND_ACCESS,
            client_id=client_id,
            subject=client_id,
            scope=scope,
            audience=audience,
            grant_type="client_credentials",
            issued_at=now,
            expires_at=now + lifetime,
            kid=self._signer.kid,
        )
        await self.rows.record(token_values(record))
        return 200, orjson.dumps(
            {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}
        )


def _settle(done: asyncio.Future[None], result: asyncio.Future[None]) -> None:
    if result.exception() is not None:
        done.set_exception(result.exception())  # type: ignore[arg-type]
    else:
        done.set_result(None)


def minimal_app(
    make: Callable[[], Awaitable[ExactIssuance]],
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The exact minimum as an ASGI app: POST /oauth/token, and GET for readiness.
    ``make`` builds its logic at start-up, on the server's loop; it is closed at the end."""
    made: list[ExactIssuance] = []

    async def startup() -> None:
        made.append(await make())

    async def shutdown() -> None:
        for logic in made:
            await logic.close()

    def answer(body: bytes) -> Awaitable[tuple[int, bytes]]:
        return made[0].answer(body)  # the coroutine itself: no frame of its own

    return form_app(TOKEN_PATH, async_answer=answer, startup=startup, shutdown=shutdown)


# -- the run -----------------------------------------------------------------------
def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _post(url: str, body: str) -> tuple[int, Any]:
    status, raw = http("POST", url, body.encode(), timeout=10.0)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw[:200]


def check_same_tokens(keyturn: Target, minimum: Target) -> None:
    """The minimum's token is one Keyturn issues: same answer, header and claims, and
    Keyturn introspects it as active (its row, hash and signature are right)."""
    theirs, mine = _post(keyturn.token_url, keyturn.body), _post(minimum.token_url, keyturn.body)
    for name, got in (("Keyturn", theirs), ("the minimum", mine)):
        if got[0] != 200 or not isinstance(got[1], dict):
            raise RuntimeError(f"{name}: token request answered {got}")
    want, have = theirs[1], mine[1]
    if {k: v for k, v in want.items() if k != "access_token"} != {
        k: v for k, v in have.items() if k != "access_token"
    } or set(want) != set(have):
        raise RuntimeError(f"the minimum's answer differs: {have} != {want}")
    if _segment(want["access_token"], 0) != _segment(have["access_token"], 0):
        raise RuntimeError("the minimum's JWT header differs from Keyturn's")
    ours, its = _segment(want["access_token"], 1), _segment(have["access_token"], 1)
    varying = ("iat", "exp", "jti")
    if set(ours) != set(its) or any(ours[k] != its[k] for k in ours if k not in varying):
        raise RuntimeError(f"the minimum's claims differ: {its} != {ours}")
    fields = {"token": have["access_token"], **keyturn.client_auth}
    status, seen = _post(keyturn.introspect_url, urllib.parse.urlencode(fields))
    if status != 200 or not isinstance(seen, dict) or seen.get("active") is not True:
        raise RuntimeError(f"Keyturn does not see the minimum's token as active: {seen}")
    if seen.get("jti") != its["jti"]:
        raise RuntimeError(f"Keyturn introspected another token: {seen}")
    wrong = keyturn.body.replace("client_secret=", "client_secret=x", 1)
    other = keyturn.body.replace(
        "grant_type=client_credentials", "grant_type=urn%3Aexample%3Anone", 1
    )
    for name, body, expected in (
        ("a wrong client secret", wrong, (401, "invalid_client")),
        ("another grant type", other, (400, "unsupported_grant_type")),
    ):
        for target in (keyturn, minimum):
            got = _post(target.token_url, body)
            if (
                got[0] != expected[0]
                or not isinstance(got[1], dict)
                or (got[1].get("error") != expected[1])
            ):
                raise RuntimeError(f"{target.label} on {name}: {got}, not {expected}")
    log("the minimum issues as Keyturn does (answer, header, claims, introspected active; "
        "wrong secret, other grant)")  # fmt: skip


def report(args: argparse.Namespace, targets: list[Target], peer_why: str | None) -> str:
    stats = summarize(targets)
    database = "PostgreSQL" if args.database == "postgres" else "SQLite"

    def cell(key: str, conc: int, field: str = "rps") -> float:
        return stats.get((ALG, key, conc), {}).get(field, float("nan"))

    def ratio(a: float, b: float) -> float | None:
        return a / b if b == b and b > 0 and a == a else None

    heads = " | ".join(f"c={c} tokens/s | vs peer" for c in CONCURRENCY)
    lines = [
        f"## Issuance against its own floor ({database}, {ALG})",
        "",
        f"{args.rounds} round(s) of {args.duration:g} s per cell, interleaved, wrk; medians. "
        "client_credentials with client_secret_post, one scope, one resource; Keyturn and "
        f"the minimum record every token in the same {database} database before answering, "
        "the peer stores nothing. vs peer = tokens/s / the peer's, same run; CPU = the server's "
        f"process tree (/proc) per token. Machine: {os.cpu_count()} CPU(s), shared; wrk on "
        "it too.",
        "",
        f"| server | {heads} | CPU µs/token at c=16 | p99 ms at c=16 |",
        "|---|" + "---:|---:|" * len(CONCURRENCY) + "---:|---:|",
    ]
    for t in targets:
        label = LABELS[t.key]
        if t.key == "peer" and peer_why:
            lines.append(f"| {label} | {' '.join(peer_why.split())} |" + " |" * 7)
            continue
        cells = []
        for conc in CONCURRENCY:
            rate = cell(t.key, conc)
            vs = "—" if t.key == "peer" else fmt_ratio(ratio(rate, cell("peer", conc)))
            cells.append(f"{fmt_rate(rate)} | {vs}")
        cpu, p99 = cell(t.key, 16, "cpu_server_us"), cell(t.key, 16, "p99")
        lines.append(
            f"| {label} | {' | '.join(cells)} | {'n/a' if cpu != cpu else f'{cpu:,.0f}'} | "
            f"{'n/a' if p99 != p99 else f'{p99:.1f}'} |"
        )
    floor, least, own = (cell(k, 16, "cpu_server_us") for k in ("bare", "minimum", "keyturn"))
    versus = ", ".join(
        f"{fmt_ratio(ratio(cell('keyturn', c), cell('minimum', c)))} at c={c}" for c in CONCURRENCY
    )
    lines += [
        "",
        f"Keyturn vs the minimum: {versus}. CPU above the HTTP floor at c=16: the minimum "
        f"{least - floor:,.0f} µs, Keyturn {own - floor:,.0f} µs per token.",
        "",
    ]
    return "\n".join(lines)


def run_all(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> str:
    from keyturn.server.settings import Settings

    def make(key: str) -> Target:
        t = Target(key, LABELS[key], ALG)
        stack.callback(lambda: stop_process(t.process))  # also if its start fails
        return t

    keyturn = make("keyturn")
    db, env = start_keyturn_for_floor(args, keyturn, tmp)
    postgres = args.database == "postgres"
    store = ["--postgres-url", args.postgres_url] if postgres else ["--db", str(db)]
    lifetime = Settings.model_fields["access_token_lifetime"].default
    minimum = make("minimum")
    log("starting the exact minimum")
    start_own(
        minimum,
        "minimal",
        [*store, "--issuer", keyturn.url, "--lifetime", str(lifetime)],
        env,
        tmp,
        SCRIPT,
    )
    minimum.body = keyturn.body
    bare = make("bare")
    log("starting the bare app")
    start_own(bare, "bare", [], env, tmp, SCRIPT)
    bare.body = keyturn.body
    peer = make("peer")
    peer_why = "not measured (--no-peer)" if args.no_peer else peer_unavailable()
    if peer_why is None:
        log("starting node-oidc-provider (JWT)")
        start_peer(peer, tmp=tmp)
    targets = [bare, minimum, keyturn, peer]
    live = [t for t in targets if t.key != "peer" or peer_why is None]

    check_same_tokens(keyturn, minimum)
    measure_rounds(live, CONCURRENCY, args, introspect=False)
    check_same_tokens(keyturn, minimum)  # still issuing real, recorded tokens
    return report(args, targets, peer_why)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Issuance: Keyturn against a bare app, the exact minimum and the peer."
    )
    add_run_arguments(parser, "keyturn_bench_issuance_floor")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--lifetime", type=int, help=argparse.SUPPRESS)  # the minimum's
    args = parser.parse_args(argv)

    if args.serve_bare:
        serve(bare_app, args.port)
        return 0
    if args.serve_minimal:
        from keyturn.server.secrets import pepper_bytes

        if not (args.pepper and args.issuer and args.port and args.lifetime):
            parser.error("--serve-minimal needs --db or --postgres-url, --pepper, --issuer, ...")
        secret = pepper_bytes(args.pepper)

        async def make() -> ExactIssuance:
            if args.db is not None:
                return ExactIssuance.on_sqlite(args.db, secret, args.issuer, args.lifetime)
            return await ExactIssuance.on_postgres(
                args.postgres_url, secret, args.issuer, args.lifetime
            )

        serve(minimal_app(make), args.port)
        return 0

    return run_main(args, "keyturn-issuance-floor-", run_all)


if __name__ == "__main__":
    raise SystemExit(main())
