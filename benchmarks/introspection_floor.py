"""Introspection against its own floor: the same stack, nothing but the exact check.

    python benchmarks/introspection_floor.py               # 3 interleaved rounds of 4 s, ~3 min
    python benchmarks/introspection_floor.py --quick       # 1 round of 2 s, about a minute
    python benchmarks/introspection_floor.py --alg ES256
    python benchmarks/introspection_floor.py --database postgres   # the PostgreSQL floor

Why: "Keyturn vs the peer" says how fast introspection is, not how fast it could
be on this stack. This run (benchmarks/README.md, "Introspection against its own
floor") puts two floors beside Keyturn and node-oidc-provider, measured in one
run, so the part of an introspection's cost that is Keyturn's own is a
difference of two figures of the same run:

1. **bare app**: an ASGI app with a fixed answer and no work, served as Keyturn
   is (uvicorn, uvloop, httptools, `KeyturnHttpProtocol`, no access log, no
   proxy headers, no server header): the HTTP floor.
2. **the exact minimum**: a hand-written ASGI app (`ExactIntrospection`) on that
   same stack, doing only what an exact RFC 7662 answer of Keyturn's needs, on
   the database file a real Keyturn server made and keeps writing: read the
   body, split the form, authenticate the client with one HMAC-SHA-256 of its
   secret under the pepper, the token's ``jti`` remembered after its first
   parse and signature check, one indexed ``sqlite3`` read of its record on a
   kept connection, the keyed hash of the signing input compared with the
   record's, liveness, an orjson answer with the fields Keyturn answers.
3. **Keyturn** (``keyturn serve``, SQLite, one worker) on that database.
4. **node-oidc-provider** with opaque tokens in memory, as run.py's
   ``--introspection`` starts it, with its own pool.

Keyturn and the minimum introspect the same pool of 50 of Keyturn's tokens.
Before any load, both must answer the same JSON for every pooled token
(active), ``{"active": false}`` for a token revoked through Keyturn's
``/oauth/revoke`` and for a token that is no JWT, and 401 for a wrong client
secret; otherwise the run fails. wrk (benchmarks/introspect.lua) runs at
concurrency 1 and 16, the four servers interleaved round after round (the order
reversed every other round); figures are medians over the rounds, ratios compare
figures of this run, CPU is the server process tree's (/proc) per request.
Everything listens on 127.0.0.1, every wrk run has a fixed duration, and every
process started here (each in its own process group) and the temporary
directory are removed at exit, also on an error, Ctrl-C or SIGTERM.

``--database postgres`` asks what PostgreSQL costs an exact answer. Liveness
that is exact across processes means a read of the database begun after the
request arrived: the one thing no cache can stand in for. So in place of the
exact minimum it runs **bare app + one PostgreSQL read** (`FreshReads`): the
bare app, except that every request first waits for a read of one token's row
on a kept asyncpg connection, a read begun after it asked. Requests that ask
while a read is on its way share the next one, so at concurrency 16 it pays
fewer round trips than any server answering 16 different tokens could. No
introspection does less: its figure bounds every exact design on this
machine, Keyturn's included. Keyturn (``keyturn serve`` on PostgreSQL) and the
peer run beside it; the benchmark database (``--postgres-url``, dropped and
made again) is dropped at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from keyturn.core.errors import InvalidRequestError
from keyturn.core.jwt_claims import unverified_jti
from keyturn.server.request_body import parse_form
from keyturn.server.secrets import Hasher

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # `run` below, also when a test imports this file
from run import (  # noqa: E402
    INTROSPECTION_CONCURRENCY,
    INTROSPECTION_POOL,
    PG_DEFAULT,
    Target,
    check_introspection,
    fmt_rate,
    fmt_ratio,
    free_port,
    http,
    keyturn_env,
    log,
    peer_unavailable,
    prepare_introspection,
    reset_postgres,
    start_keyturn,
    start_peer,
    stop_process,
    summarize,
    wait_ready,
    wrk,
)

SCRIPT = Path(__file__).resolve()
INTROSPECT_PATH = "/oauth/introspect"
PROTOCOL = "keyturn.server.http_protocol:KeyturnHttpProtocol"
UVICORN_OPTIONS: dict[str, Any] = {
    # What `keyturn serve` gives uvicorn (src/keyturn/cli.py), less its log config:
    # its protocol class, the default loop ("auto": uvloop when installed, as here),
    # no access log, no proxy-header middleware (no trusted proxies), no server header.
    "http": PROTOCOL,
    "loop": "auto",
    "access_log": False,
    "proxy_headers": False,
    "server_header": False,
    "log_level": "warning",
    "lifespan": "on",
}
VERIFIED_MEMORY = 4096
"""Tokens whose signature the minimum remembers (Keyturn's `VerifiedTokens` default)."""
MAX_BODY = 64 * 1024
LABELS = {
    "bare": "bare app, fixed answer, no work",
    "minimum": "the exact minimum",
    "read": "bare app + one PostgreSQL read",
    "keyturn": "Keyturn",
    "peer": "node-oidc-provider (opaque, in memory)",
}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# -- the exact minimum -------------------------------------------------------------
INACTIVE = orjson.dumps({"active": False})
AUTH_FAILED = orjson.dumps(
    {
        "error": "invalid_client",
        "error_description": "client authentication failed: unknown client or wrong secret",
    }
)
TOKEN_REQUIRED = orjson.dumps(
    {"error": "invalid_request", "error_description": "the token parameter is required"}
)
BAD_FORM = orjson.dumps({"error": "invalid_request", "error_description": "malformed form body"})
ADMIN_SCOPE = "keyturn:admin"
TOKEN_SQL = (
    "SELECT kind, token_hash, kid, token_id, client_id, subject, scope, audience, issued_at, "
    "expires_at, revoked_at FROM tokens WHERE token_id = ?"
)
PG_TOKEN_SQL = TOKEN_SQL.replace("?", "$1")
CLIENT_SQL = (
    "SELECT client_id, secret_hash, previous_secret_hash, previous_secret_expires_at, "
    "auth_methods, can_introspect, scopes FROM clients"
)


class ClientEntry(NamedTuple):
    secret_hash: str | None
    previous_hash: str | None
    previous_expires_at: int | None
    post: bool  # may authenticate with client_secret_post
    sees_all: bool  # may introspect other clients' tokens (can_introspect or admin)


class VerifyingKey(NamedTuple):
    key: Any  # a pyca/cryptography public key
    alg: str


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64int(text: str) -> int:
    return int.from_bytes(_b64decode(text), "big")


def public_key(jwk: dict[str, Any]) -> Any:
    """A stored public JWK (``signing_keys.public_jwk``) as a cryptography key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(_b64int(jwk["e"]), _b64int(jwk["n"])).public_key()
    if jwk["kty"] == "EC":
        numbers = ec.EllipticCurvePublicNumbers(
            _b64int(jwk["x"]), _b64int(jwk["y"]), ec.SECP256R1()
        )
        return numbers.public_key()
    return ed25519.Ed25519PublicKey.from_public_bytes(_b64decode(jwk["x"]))


def signature_valid(key: VerifyingKey, signing_input: str, signature: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    try:
        raw = _b64decode(signature)
        data = signing_input.encode("ascii")
        if key.alg == "RS256":
            key.key.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
        elif key.alg == "ES256":
            if len(raw) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
            key.key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        else:
            key.key.verify(raw, data)
    except (InvalidSignature, ValueError):
        return False
    return True


class ExactIntrospection:
    """Keyturn's RFC 7662 answer for its own access tokens (client_secret_post), and
    nothing a server adds around it: no request id, metric, lockout, Starlette.

    ``answer(body)`` is the whole logic, the ASGI app (`minimal_app`) only moves
    bytes. Clients and public keys are read once; a client that fails is read
    again (a new client, a rotated secret), as Keyturn's failure path does.
    """

    def __init__(
        self,
        db_path: str | Path,
        pepper: bytes,
        issuer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from keyturn.server.endpoints.presented_token import INTROSPECT_REFUSAL

        self._hasher = Hasher(pepper)  # Keyturn's: a copy of one keyed HMAC a hash
        # Autocommit: each read sees every committed revocation, as Keyturn's reader.
        self._db = sqlite3.connect(
            str(db_path), timeout=1.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA query_only=ON")
        self._issuer = issuer
        self._clock = clock
        self._not_permitted = orjson.dumps({"active": False, "not_permitted": INTROSPECT_REFUSAL})
        self._clients: dict[str, ClientEntry] = {}
        self._keys: dict[str, VerifyingKey] = {}
        self._verified: dict[str, tuple[str, str]] = {}  # token -> (jti, kid)
        self._load_clients()
        self._load_keys()

    def close(self) -> None:
        self._db.close()

    def _load_clients(self, client_id: str | None = None) -> None:
        if client_id is None:
            rows = self._db.execute(CLIENT_SQL)
        else:
            rows = self._db.execute(CLIENT_SQL + " WHERE client_id = ?", (client_id,))
        for cid, current, previous, until, methods, can_introspect, scopes in rows:
            self._clients[cid] = ClientEntry(
                current,
                previous,
                until,
                "client_secret_post" in orjson.loads(methods),
                bool(can_introspect) or ADMIN_SCOPE in orjson.loads(scopes),
            )

    def _load_keys(self) -> None:
        for kid, alg, jwk in self._db.execute("SELECT kid, alg, public_jwk FROM signing_keys"):
            self._keys[kid] = VerifyingKey(public_key(orjson.loads(jwk)), alg)

    def _accepts(self, client: ClientEntry | None, actual: str) -> bool:
        if client is None or not client.post:
            return False
        if client.secret_hash and hmac.compare_digest(actual, client.secret_hash):
            return True
        return (
            client.previous_hash is not None
            and client.previous_expires_at is not None
            and self._clock() < client.previous_expires_at
            and hmac.compare_digest(actual, client.previous_hash)
        )

    def _authenticated(self, client_id: str, secret: str) -> ClientEntry | None:
        actual = self._hasher.hash(secret)  # the one HMAC of the request's secret
        client = self._clients.get(client_id)
        if self._accepts(client, actual):
            return client
        self._clients.pop(client_id, None)
        self._load_clients(client_id)
        client = self._clients.get(client_id)
        return client if self._accepts(client, actual) else None

    def _signed(self, kid: str, signing_input: str, signature: str) -> bool:
        key = self._keys.get(kid)
        if key is None:
            self._load_keys()  # a key made after start
            key = self._keys.get(kid)
        return key is not None and signature_valid(key, signing_input, signature)

    def _record(self, token: str) -> tuple[Any, ...] | None:
        """The token's record, if ``token`` is the very access token it was written for."""
        known = self._verified.get(token)
        jti = known[0] if known is not None else unverified_jti(token)
        if jti is None:
            return None
        row: tuple[Any, ...] | None = self._db.execute(TOKEN_SQL, (jti,)).fetchone()
        if row is None or row[0] != "access_token" or token.count(".") != 2:
            return None
        signing_input, _, signature = token.rpartition(".")
        if not self._hasher.verify(signing_input, row[1]):
            return None
        kid = row[2]
        if kid is None:
            return None
        if known is not None and known[1] == kid:
            return row
        if not self._signed(kid, signing_input, signature):
            return None
        if len(self._verified) >= VERIFIED_MEMORY:
            self._verified.clear()
        self._verified[token] = (jti, kid)
        return row

    def answer(self, body: bytes) -> tuple[int, bytes]:
        """HTTP status and JSON body for an introspection request's form body."""
        try:  # Keyturn's own form split: one per body, as Keyturn pays
            params = parse_form(body)
        except InvalidRequestError:  # not UTF-8, or a parameter twice
            return 400, BAD_FORM
        client_id = params.get("client_id")
        secret = params.get("client_secret")
        if not client_id or secret is None:
            return 401, AUTH_FAILED
        client = self._authenticated(client_id, secret)
        if client is None:
            return 401, AUTH_FAILED
        token = params.get("token")
        if not token:
            return 400, TOKEN_REQUIRED
        row = self._record(token)
        if row is None:
            return 200, INACTIVE
        _, _, _, jti, owner, subject, scope, audience, issued_at, expires_at, revoked_at = row
        if owner != client_id and not client.sees_all:
            return 200, self._not_permitted
        if revoked_at is not None or expires_at <= self._clock():
            return 200, INACTIVE
        answer: dict[str, Any] = {
            "active": True,
            "scope": scope,
            "client_id": owner,
            "sub": subject,
            "exp": expires_at,
            "iat": issued_at,
            "jti": jti,
            "iss": self._issuer,
            "token_type": "Bearer",
        }
        aud = orjson.loads(audience)
        if aud:
            answer["aud"] = aud[0] if len(aud) == 1 else aud
        return 200, orjson.dumps(answer)


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    """Keyturn's JSON answer headers (`responses.JSONAnswer`)."""
    return [
        (b"cache-control", b"no-store"),
        (b"pragma", b"no-cache"),
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
    ]


async def _lifespan(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """An ASGI lifespan that runs ``startup`` and ``shutdown``, if given."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if shutdown is not None:
                await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes | None:
    message = await receive()
    body: bytes = message.get("body", b"")
    while message.get("more_body"):
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
    return body


Answer = Callable[[bytes], tuple[int, bytes]]
AsyncAnswer = Callable[[bytes], Awaitable[tuple[int, bytes]]]


def form_app(
    path: str,
    answer: Answer | None = None,
    *,
    async_answer: AsyncAnswer | None = None,
    startup: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A floor's ASGI app: POST ``path`` is answered by ``answer(body)`` (or awaited
    ``async_answer(body)``), GET by a readiness answer; ``startup`` and
    ``shutdown`` run in the lifespan. It only moves bytes: the logic is the answer's."""
    ready = orjson.dumps({"status": "ok"})
    missing = orjson.dumps({"error": "not_found"})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send, startup, shutdown)
            return
        if scope["method"] == "GET":
            status, payload = 200, ready
        elif scope["path"] != path:
            status, payload = 404, missing
        else:
            body = await _read_body(receive)
            if body is None:
                status, payload = 413, BAD_FORM
            elif answer is not None:
                status, payload = answer(body)
            else:
                assert async_answer is not None
                status, payload = await async_answer(body)
        await send({"type": "http.response.start", "status": status, "headers": _headers(payload)})
        await send({"type": "http.response.body", "body": payload})

    return app


def minimal_app(logic: ExactIntrospection) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The exact minimum as an ASGI app: POST /oauth/introspect, and GET for readiness."""
    return form_app(INTROSPECT_PATH, logic.answer)


# -- the HTTP floor ----------------------------------------------------------------
BARE_BODY = orjson.dumps({"active": False})
BARE_HEADERS = _headers(BARE_BODY)


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A fixed answer to anything: the request's one body message is taken, no more."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": BARE_HEADERS})
    await send({"type": "http.response.body", "body": BARE_BODY})


class FreshReads:
    """One token's row, read on a kept asyncpg connection for every caller, each
    time by a read that began after the caller asked.

    A caller alone reads at once; callers who ask while a read is on its way
    wait together for the next one. That is the least an exact answer can wait
    for on PostgreSQL, and less than a server answering different tokens pays.
    """

    def __init__(self, conn: Any, token_id: str) -> None:
        self._conn = conn
        self._token_id = token_id
        self._reading = False
        self._next: asyncio.Future[Any] | None = None  # the waiters of the next read
        self._tasks: set[asyncio.Task[None]] = set()

    async def _read(self) -> Any:
        return await self._conn.fetchrow(PG_TOKEN_SQL, self._token_id)

    async def row(self) -> Any:
        if not self._reading:
            self._reading = True
            try:
                return await self._read()
            finally:
                self._reading = False
                if self._next is not None:
                    self._start_next()
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        return await self._next

    def _start_next(self) -> None:
        self._reading = True
        task = asyncio.get_running_loop().create_task(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        try:
            while (waiting := self._next) is not None:
                self._next = None
                try:
                    waiting.set_result(await self._read())
                except Exception as exc:
                    waiting.set_exception(exc)
        finally:
            self._reading = False


def read_app(postgres_url: str, token_id: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The bare app, waiting first for a fresh read of ``token_id``'s row (`FreshReads`)."""
    reads: list[FreshReads] = []

    async def lifespan(receive: Receive, send: Send) -> None:
        import asyncpg  # type: ignore[import-untyped]

        conn = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                conn = await asyncpg.connect(postgres_url, timeout=10)
                if await conn.fetchrow(PG_TOKEN_SQL, token_id) is None:
                    raise RuntimeError(f"no token {token_id!r} in {postgres_url}")
                reads.append(FreshReads(conn, token_id))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if conn is not None:
                    await conn.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            return
        await receive()
        if scope["method"] != "GET":  # readiness probes do not read
            await reads[0].row()
        await send({"type": "http.response.start", "status": 200, "headers": BARE_HEADERS})
        await send({"type": "http.response.body", "body": BARE_BODY})

    return app


def serve(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, **UVICORN_OPTIONS)


# -- the run -----------------------------------------------------------------------
def start_own(
    target: Target,
    mode: str,
    extra: list[str],
    env: dict[str, str],
    tmp: Path,
    script: Path = SCRIPT,
) -> None:
    """``script`` (this one by default) in ``--serve-<mode>`` as its own process
    (group), on a free port."""
    port = free_port()
    target.url = f"http://127.0.0.1:{port}"
    target.log_path = tmp / f"{mode}.log"
    cmd = [sys.executable, str(script), f"--serve-{mode}", "--port", str(port), *extra]
    with target.log_path.open("wb") as out:
        target.process = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_ready(target, "/livez")


def _post(url: str, fields: dict[str, str]) -> tuple[int, Any]:
    status, raw = http("POST", url, urllib.parse.urlencode(fields).encode(), timeout=10.0)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw[:200]


def check_same_answers(keyturn: Target, minimum: Target) -> None:
    """The minimum answers as Keyturn does: pool, revoked, unknown, wrong secret."""
    auth = keyturn.client_auth
    tokens = [urllib.parse.parse_qs(b)["token"][0] for b in keyturn.introspect_bodies]
    status, raw = http("POST", keyturn.token_url, keyturn.body.encode(), timeout=10.0)
    if status != 200:
        raise RuntimeError(f"Keyturn: token request answered {status}: {raw[:200]!r}")
    revoked = json.loads(raw)["access_token"]
    cases: list[tuple[str, dict[str, str], tuple[int, Any] | None]] = [
        (f"pooled token {i}", {"token": t, **auth}, None) for i, t in enumerate(tokens)
    ]
    cases.append(("the token to revoke, before", {"token": revoked, **auth}, None))
    for name, fields, _ in cases:
        want, got = _post(keyturn.introspect_url, fields), _post(minimum.introspect_url, fields)
        if want[0] != 200 or not isinstance(want[1], dict) or want[1].get("active") is not True:
            raise RuntimeError(f"Keyturn: {name} is not active: {want}")
        if got != want:
            raise RuntimeError(f"the minimum differs from Keyturn on {name}: {got} != {want}")
    status, raw = http(
        "POST",
        keyturn.url + keyturn.revoke_path,
        urllib.parse.urlencode({"token": revoked, **auth}).encode(),
        timeout=10.0,
    )
    if status != 200:
        raise RuntimeError(f"Keyturn: revocation answered {status}: {raw[:200]!r}")
    wrong = {**auth, "client_secret": auth["client_secret"] + "x"}
    for name, fields, expected in (
        ("a revoked token", {"token": revoked, **auth}, (200, {"active": False})),
        ("a token that is no JWT", {"token": "not-a-token", **auth}, (200, {"active": False})),
        ("a wrong client secret", {"token": tokens[0], **wrong}, None),
    ):
        for target in (keyturn, minimum):
            got = _post(target.introspect_url, fields)
            if expected is not None and got != expected:
                raise RuntimeError(f"{target.label} on {name}: {got}, not {expected}")
            if expected is None and (
                got[0] != 401 or not isinstance(got[1], dict) or got[1]["error"] != "invalid_client"
            ):
                raise RuntimeError(f"{target.label} on {name}: {got}, not a 401 invalid_client")
    log(f"the minimum answers as Keyturn does ({len(tokens)} pooled tokens, revoked, "
        "unknown, wrong secret)")  # fmt: skip


def measured(
    target: Target, connections: int, seconds: float, *, introspect: bool = True
) -> dict[str, float]:
    """One wrk run of ``target`` (introspections, or token requests); errors fail the run."""
    run = wrk(target, connections, seconds, introspect=introspect)
    if run["errors"]:
        raise RuntimeError(f"{target.label}: {run['errors']:.0f} errors at c={connections}")
    return run


def measure_rounds(
    live: list[Target],
    concurrency: tuple[int, ...],
    args: argparse.Namespace,
    *,
    introspect: bool,
) -> None:
    """A warm-up of each target (caches, the minimum's memory, node's JIT), then
    ``args.rounds`` rounds of every concurrency, the targets interleaved and their
    order reversed every other round, so background load hits them alike."""
    for t in live:
        measured(t, 16, 1.0, introspect=introspect)
    for r in range(args.rounds):
        log(f"round {r + 1}/{args.rounds}")
        for conc in concurrency:
            for t in live if r % 2 == 0 else list(reversed(live)):
                run = measured(t, conc, args.duration, introspect=introspect)
                t.runs.setdefault(conc, []).append(run)


def report(args: argparse.Namespace, targets: list[Target], peer_why: str | None) -> str:
    stats = summarize(targets)
    alg = args.alg
    postgres = args.database == "postgres"
    database = "PostgreSQL" if postgres else "SQLite"
    who = "Keyturn" if postgres else "Keyturn and the minimum"

    def cell(key: str, conc: int, field: str = "rps") -> float:
        return stats.get((alg, key, conc), {}).get(field, float("nan"))

    def ratio(a: float, b: float) -> float | None:
        return a / b if b == b and b > 0 and a == a else None

    lines = [
        f"## Introspection against its own floor ({database}, {alg})",
        "",
        f"{args.rounds} round(s) of {args.duration:g} s per cell, interleaved, wrk; medians. "
        f"{who} introspect{'s' if postgres else ''} {INTROSPECTION_POOL} of Keyturn's "
        "tokens (client_secret_post), the peer its own opaque ones. vs peer = req/s / the "
        "peer's, same run; CPU = the server's process tree (/proc) per request. "
        f"Machine: {os.cpu_count()} CPU(s), shared; wrk on it too.",
        "",
        "| server | c=1 req/s | vs peer | c=16 req/s | vs peer | CPU µs/req at c=16 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in targets:
        label = LABELS[t.key]
        if t.key == "peer" and peer_why:
            lines.append(f"| {label} | {' '.join(peer_why.split())} | | | | |")
            continue
        one, sixteen = cell(t.key, 1), cell(t.key, 16)
        vs = ("—", "—") if t.key == "peer" else (
            fmt_ratio(ratio(one, cell("peer", 1))), fmt_ratio(ratio(sixteen, cell("peer", 16)))
        )  # fmt: skip
        cpu = cell(t.key, 16, "cpu_server_us")
        lines.append(
            f"| {label} | {fmt_rate(one)} | {vs[0]} | {fmt_rate(sixteen)} | {vs[1]} | "
            f"{'n/a' if cpu != cpu else f'{cpu:,.0f}'} |"
        )
    least_key = "read" if postgres else "minimum"
    floor, least, own = (cell(k, 16, "cpu_server_us") for k in ("bare", least_key, "keyturn"))
    name = "bare app + one read" if postgres else "the minimum"
    lines += [
        "",
        f"Keyturn vs {name}: "
        f"{fmt_ratio(ratio(cell('keyturn', 1), cell(least_key, 1)))} at c=1, "
        f"{fmt_ratio(ratio(cell('keyturn', 16), cell(least_key, 16)))} at c=16. "
        f"CPU above the HTTP floor at c=16: {name} {least - floor:,.0f} µs, "
        f"Keyturn {own - floor:,.0f} µs per request.",
    ]
    if postgres:
        one = cell("read", 1)
        if one == one and one > 0:
            lines.append(
                f"At c=1 one read on its own: {1e6 / one - 1e6 / cell('bare', 1):,.0f} µs of "
                "latency over the bare app (a round trip to PostgreSQL and back, on the "
                "event loop)."
            )
    lines.append("")
    return "\n".join(lines)


def start_keyturn_for_floor(
    args: argparse.Namespace, keyturn: Target, tmp: Path
) -> tuple[Path, dict[str, str]]:
    """Keyturn (one worker) on a fresh database of ``args.database``: its SQLite
    file (when on SQLite), and the ``KEYTURN_*`` environment that the floors read
    as Keyturn does (`KeyturnHttpProtocol`'s limits, the pepper)."""
    pepper = os.urandom(32).hex()
    data_dir = tmp / f"{keyturn.alg}-{keyturn.key}"  # where start_keyturn puts its files
    db = data_dir / "keyturn.db"
    if args.database == "postgres":
        why = reset_postgres(args.postgres_url)
        if why:
            raise RuntimeError(why)
        database_url = args.postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        database_url = f"sqlite+aiosqlite:///{db}"
    log(f"starting Keyturn ({args.database}, {keyturn.alg})")
    start_keyturn(
        keyturn, tmp=tmp, database_url=database_url, workers=1, src=None,
        extra_env={"KEYTURN_PEPPER": pepper},
    )  # fmt: skip
    return db, keyturn_env(data_dir, database_url, keyturn.alg, pepper, None)


def run_all(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> str:
    alg = args.alg
    concurrency = INTROSPECTION_CONCURRENCY

    def make(key: str) -> Target:
        t = Target(key, LABELS[key], alg, concurrency=concurrency)
        stack.callback(lambda: stop_process(t.process))  # also if its start fails
        return t

    postgres = args.database == "postgres"
    keyturn = make("keyturn")
    db, env = start_keyturn_for_floor(args, keyturn, tmp)
    prepare_introspection(keyturn)
    if postgres:
        least = make("read")
        log("starting the bare app + one PostgreSQL read")
        first = urllib.parse.parse_qs(keyturn.introspect_bodies[0])["token"][0]
        token_id = unverified_jti(first)
        assert token_id is not None
        start_own(
            least, "read", ["--postgres-url", args.postgres_url, "--token-id", token_id], env, tmp
        )
    else:
        least = make("minimum")
        log("starting the exact minimum")
        start_own(least, "minimal", ["--db", str(db), "--issuer", keyturn.url], env, tmp)
    least.introspect_bodies = keyturn.introspect_bodies
    bare = make("bare")
    log("starting the bare app")
    start_own(bare, "bare", [], env, tmp)
    bare.introspect_bodies = keyturn.introspect_bodies
    peer = make("peer")
    peer_why = "not measured (--no-peer)" if args.no_peer else peer_unavailable()
    if peer_why is None:
        log("starting node-oidc-provider (opaque tokens)")
        start_peer(peer, tmp=tmp, token_format="opaque")
        prepare_introspection(peer)
    targets = [bare, least, keyturn, peer]
    live = [t for t in targets if t.key != "peer" or peer_why is None]

    if not postgres:  # the fixed answer of bare app + one read says nothing to compare
        check_same_answers(keyturn, least)
    measure_rounds(live, concurrency, args, introspect=True)
    for t in live:
        if t.key not in ("bare", "read"):
            check_introspection(t)  # still active: the run measured real answers
    return report(args, targets, peer_why)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: children stopped, tmp removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Introspection: Keyturn against a bare app, the exact minimum and the peer."
    )
    add_run_arguments(parser, "keyturn_bench_floor")
    parser.add_argument("--alg", choices=("RS256", "ES256"), default="RS256")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="sqlite: the exact minimum; postgres: bare app + one PostgreSQL read",
    )
    # Internal: bare app + one PostgreSQL read, and the token it reads.
    parser.add_argument("--serve-read", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--token-id", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_bare:
        serve(bare_app, args.port)
        return 0
    if args.serve_read:
        serve(read_app(args.postgres_url, args.token_id), args.port)
        return 0
    if args.serve_minimal:
        from keyturn.server.secrets import pepper_bytes

        if not (args.db and args.pepper and args.issuer and args.port):
            parser.error("--serve-minimal needs --db, --pepper (or KEYTURN_PEPPER), --issuer")
        logic = ExactIntrospection(args.db, pepper_bytes(args.pepper), args.issuer)
        serve(minimal_app(logic), args.port)
        return 0

    return run_main(args, "keyturn-floor-", run_all)


def add_run_arguments(parser: argparse.ArgumentParser, postgres_database: str) -> None:
    """The switches every floor script takes, and those of the servers it starts as
    its own processes (``--serve-*``, hidden)."""
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 4; quick 2)")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s")
    parser.add_argument("--no-peer", action="store_true", help="skip node-oidc-provider")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("KEYTURN_BENCH_PG", PG_DEFAULT).rsplit("/", 1)[0]
        + f"/{postgres_database}",
        help="the benchmark database for --database postgres (dropped and made again)",
    )
    parser.add_argument("--serve-minimal", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--issuer", help=argparse.SUPPRESS)
    parser.add_argument(
        "--pepper", default=os.environ.get("KEYTURN_PEPPER"), help=argparse.SUPPRESS
    )


def run_main(
    args: argparse.Namespace,
    prefix: str,
    run_all: Callable[[argparse.Namespace, Path, ExitStack], str],
) -> int:
    """A floor script's run: ``run_all`` in a temporary directory; every process it
    started and the directory are gone at the end, also on an error or SIGTERM."""
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 4.0)
    if shutil.which("wrk") is None:
        log("wrk is not installed (apt-get install wrk)")
        return 1
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)  # last, once all have stopped
        text = run_all(args, tmp, stack)
    sys.stdout.write(text + f"\nTotal run time {time.monotonic() - started:.0f} s.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
