"""Every Prometheus metric Keyturn exports, and how they are exposed.

Defined in this one module so that instrumenting a place is one line, and so
that ``/metrics`` holds nothing but ``keyturn_*`` metrics: no ``python_info``,
no process or platform collectors (no versions, no paths).

With ``keyturn serve --workers N`` each worker is a process with its own
counters; prometheus-client's *multiprocess mode* makes the N one view. Each
worker writes its values to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``
(``serve`` makes a private one when the operator set none) and whichever
process answers a scrape sums the files: counters and histograms add up,
gauges are combined as their ``multiprocess_mode`` says. The mode is chosen by
prometheus-client when it is first imported, from that variable, so it must be
in the environment before then: ``serve`` sets it before uvicorn spawns the
workers. `MULTIPROCESS` tells which mode this process is in.

Label values are bounded everywhere (`Bounded`): routes are the app's fixed
route paths, never raw request paths; client ids get their own label only for
the first ``KEYTURN_METRICS_PER_CLIENT`` seen by a process, the rest count as
``other``.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.to_thread
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

if TYPE_CHECKING:
    from keyturn.server.context import ServerContext
    from keyturn.server.settings import Settings

log = logging.getLogger("keyturn.server")

MULTIPROCESS: bool = values.ValueClass is not values.MutexValue
"""Whether this process's values live in ``PROMETHEUS_MULTIPROC_DIR`` files."""

REGISTRY = CollectorRegistry(auto_describe=True)
"""Keyturn's metrics in a process that is not in multiprocess mode."""

OTHER = "other"

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIGNING = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# -- counters ------------------------------------------------------------------
TOKENS_ISSUED = Counter(
    "keyturn_tokens_issued",
    "Access tokens issued (signed, and recorded where the grant records them).",
    ["grant_type", "alg"],
    registry=REGISTRY,
)
CLIENT_TOKENS_ISSUED = Counter(
    "keyturn_client_tokens_issued",
    "Access tokens issued per client id, for the first KEYTURN_METRICS_PER_CLIENT client "
    "ids a process sees (off by default); the others are counted under client_id='other'.",
    ["client_id"],
    registry=REGISTRY,
)
TOKEN_ERRORS = Counter(
    "keyturn_token_errors",
    "Token endpoint error answers by RFC 6749 error code.",
    ["error"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "keyturn_rate_limited",
    "429 answers: issuance (a client's token rate), lockout (a client id or username "
    "locked for a source after failed authentications), address (a source throttled).",
    ["reason"],
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "keyturn_auth_failures",
    "Failed authentications counted toward lockouts: client (secret) or user (password).",
    ["kind"],
    registry=REGISTRY,
)
TOKENS_PURGED = Counter(
    "keyturn_tokens_purged",
    "Expired or revoked token rows deleted by the purge.",
    registry=REGISTRY,
)

# -- histograms ----------------------------------------------------------------
REQUEST_SECONDS = Histogram(
    "keyturn_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route and status.",
    ["route", "status"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
TOKEN_WRITE_BATCH = Histogram(
    "keyturn_token_write_batch_size",
    "Token records written per database transaction (group commit).",
    buckets=_BATCH,
    registry=REGISTRY,
)
TOKEN_WRITE_SECONDS = Histogram(
    "keyturn_token_write_seconds",
    "Time to write and commit one batch of token records.",
    buckets=_LATENCY,
    registry=REGISTRY,
)
SIGNING_SECONDS = Histogram(
    "keyturn_signing_seconds",
    "Time to sign an access token as the issuer waits for it (the wait for the loop turn's "
    "batch, or the thread or helper hop, included).",
    ["alg"],
    buckets=_SIGNING,
    registry=REGISTRY,
)

# -- gauges (set by `sample`; combined across workers by their multiprocess_mode) --
DENYLIST_BACKLOG = Gauge(
    "keyturn_denylist_backlog",
    "Revocations recorded in the database but not yet published to Redis.",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
DENYLIST_LAG = Gauge(
    "keyturn_denylist_lag_seconds",
    "Age of the oldest revocation not yet published to Redis (0 when none).",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
DEPENDENCY_UP = Gauge(
    "keyturn_dependency_up",
    "1 while the database (or Redis, when configured) answers, 0 during an outage; "
    "the lowest of the processes.",
    ["dependency"],
    registry=REGISTRY,
    multiprocess_mode="livemin",
)
KEY_STATE = Gauge(
    "keyturn_signing_key_state",
    "1 for the state each signing key is in (pending, active, retired), 0 for the others.",
    ["kid", "alg", "state"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
KEY_AGE = Gauge(
    "keyturn_signing_key_age_seconds",
    "Seconds since each signing key was created.",
    ["kid", "alg"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
KEY_STATES = ("pending", "active", "retired")


class LocalCounter:
    """A counter child's increments, kept in this process until `flush` adds them.

    In multiprocess mode one prometheus-client increment takes a lock and
    writes a memory-mapped file (about 2 us; a histogram observation, 4 us),
    and a token request made four: together some 10 % of its time. Here an
    event is an addition in memory (a few tenths of a microsecond), and
    `flush` (every `FLUSH_INTERVAL`, before each scrape this process answers,
    at exit) writes the totals, so other processes see them at most that late.
    Everything runs on the event loop's thread, so nothing needs a lock.
    """

    __slots__ = ("_child", "_pending")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._pending = 0.0
        _LOCAL.append(self)

    def inc(self, amount: float = 1.0) -> None:
        self._pending += amount

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, 0.0
            self._child.inc(pending)


class LocalHistogram:
    """A histogram child's observations, kept per bucket until `flush` (see `LocalCounter`).

    Flushing adds to the child's bucket and sum values directly: prometheus-
    client has no public call that adds many observations at once. Should a
    version lay its histograms out otherwise, observations go straight through.
    """

    __slots__ = ("_bounds", "_child", "_counts", "_direct", "_sum")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._bounds: list[float] = list(getattr(child, "_upper_bounds", ()))
        buckets = getattr(child, "_buckets", None)
        self._direct = not (
            self._bounds
            and isinstance(buckets, list)
            and len(buckets) == len(self._bounds)
            and hasattr(child, "_sum")
        )
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        _LOCAL.append(self)

    def observe(self, amount: float) -> None:
        if self._direct:
            self._child.observe(amount)
            return
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1  # first le >= amount
        self._sum += amount

    def flush(self) -> None:
        if self._direct or not any(self._counts):
            return
        counts, total = self._counts, self._sum
        self._counts, self._sum = [0] * len(counts), 0.0
        for bucket, count in zip(self._child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
        self._child._sum.inc(total)


_LOCAL: list[LocalCounter | LocalHistogram] = []

C = TypeVar("C", LocalCounter, LocalHistogram)


class Bounded(Generic[C]):
    """Children of a labelled metric bound once, at most ``cap`` label values, then
    `OTHER`: the hot path does a dict lookup, never an unbounded label set."""

    def __init__(self, metric: Any, cap: int, local: type[C]) -> None:
        self._metric = metric
        self._local: type[C] = local
        self.cap = cap
        self._children: dict[Any, C] = {}
        self._other: C | None = None

    def get(self, *labels: str) -> C:
        child = self._children.get(labels)
        if child is not None:
            return child
        if len(self._children) < self.cap:
            bound: C = self._local(self._metric.labels(*labels))
            self._children[labels] = bound
            return bound
        if self._other is None:
            self._other = self._local(self._metric.labels(*(OTHER for _ in labels)))
        return self._other


_issued = Bounded(TOKENS_ISSUED, 64, LocalCounter)
_per_client = Bounded(CLIENT_TOKENS_ISSUED, 0, LocalCounter)
_token_errors = Bounded(TOKEN_ERRORS, 32, LocalCounter)
_auth_failures = Bounded(AUTH_FAILURES, 8, LocalCounter)
_signing = Bounded(SIGNING_SECONDS, 8, LocalHistogram)
_requests = Bounded(REQUEST_SECONDS, 256, LocalHistogram)
_write_batch = LocalHistogram(TOKEN_WRITE_BATCH)
_write_seconds = LocalHistogram(TOKEN_WRITE_SECONDS)

RATE_LIMITED_ISSUANCE = LocalCounter(RATE_LIMITED.labels("issuance"))
RATE_LIMITED_LOCKOUT = LocalCounter(RATE_LIMITED.labels("lockout"))
RATE_LIMITED_ADDRESS = LocalCounter(RATE_LIMITED.labels("address"))
_AUTH_KINDS = {"authfail": "client", "loginfail": "user"}


def flush() -> None:
    """Write this process's pending increments to the metric values (see `LocalCounter`)."""
    for local in _LOCAL:
        local.flush()


def configure(settings: Settings) -> None:
    """Apply the settings that shape metrics (per-client labels) in this process."""
    global _per_client
    if _per_client.cap != settings.metrics_per_client:  # a new cap starts a new set
        flush()
        _per_client = Bounded(CLIENT_TOKENS_ISSUED, settings.metrics_per_client, LocalCounter)


# -- one line at each instrumented place --------------------------------------
def token_issued(grant_type: str, alg: str, client_id: str) -> None:
    _issued.get(grant_type, alg).inc()
    if _per_client.cap:
        _per_client.get(client_id).inc()


def auth_failed(lockout_kind: str) -> None:
    """A failed authentication, by `keyturn.server.lockout.Lockout.kind`."""
    _auth_failures.get(_AUTH_KINDS.get(lockout_kind, OTHER)).inc()


def token_error(error: str) -> None:
    _token_errors.get(error).inc()


def signed(alg: str, seconds: float) -> None:
    _signing.get(alg).observe(seconds)


def token_write(batch: int, seconds: float) -> None:
    _write_batch.observe(batch)
    _write_seconds.observe(seconds)


# -- request latency, told by the outermost wrapper (request_id.request_ids) ------
def request_timer(
    paths: Iterable[str],
    prefixes: Iterable[str] = (),
    templates: Iterable[tuple[re.Pattern[str], str]] = (),
) -> Callable[[Scope, int, float], None]:
    """Observe each HTTP request's duration by route and status.

    The route label is one of ``paths`` (exact), a route template that matches
    (``templates``: a route with path parameters, as its regex and its
    template, such as ``/oauth2/clients/{client_id}/access-token/renew``),
    ``prefixes`` (a mounted app: everything under it counts as the prefix) or
    `OTHER`, so a scan of random URLs adds no series. The status is 0 when no
    answer began (the client went away, or a crash).
    """
    exact = {p: p for p in paths}
    patterns = tuple(templates)
    mounts = tuple((p.rstrip("/") + "/", p) for p in prefixes)

    def route_of(path: str) -> str:
        route = exact.get(path)
        if route is not None:
            return route
        for regex, template in patterns:
            if regex.match(path):
                return template
        for start, name in mounts:
            if path.startswith(start) or path == name:
                return name
        return OTHER

    def finished(scope: Scope, status: int, seconds: float) -> None:
        _requests.get(route_of(scope["path"]), str(status)).observe(seconds)

    return finished


# -- gauges, sampled from the process's own state (no I/O) -----------------------
_known_keys: set[tuple[str, str]] = set()


def sample(ctx: ServerContext) -> None:
    """Set the gauges from what this process knows: health, deny-list, keys."""
    DEPENDENCY_UP.labels("database").set(0 if ctx.storage.health.down else 1)
    if ctx.settings.redis_url:  # else no series: a labelled gauge has none until set
        breakers = [getattr(part, "breaker", None) for part in (ctx.denylist, ctx.limiter)]
        down = any(b is not None and b.health.down for b in breakers)
        DEPENDENCY_UP.labels("redis").set(0 if down else 1)
    backlog = getattr(ctx.denylist, "backlog", None)
    if backlog is not None:
        DENYLIST_BACKLOG.set(backlog)
        DENYLIST_LAG.set(getattr(ctx.denylist, "lag", 0.0))
    now = ctx.clock()
    held: set[tuple[str, str]] = set()
    for status in ctx.keyring.loaded_statuses(now):
        key = (status.kid, status.alg)
        held.add(key)
        for state in KEY_STATES:
            KEY_STATE.labels(*key, state).set(1 if state == status.state else 0)
        KEY_AGE.labels(*key).set(max(0.0, now - status.created_at))
    for key in _known_keys - held:  # dropped: its rotation is over
        if MULTIPROCESS:  # series cannot be removed from the files: all states 0
            for state in KEY_STATES:
                KEY_STATE.labels(*key, state).set(0)
        else:
            for state in KEY_STATES:
                KEY_STATE.remove(*key, state)
            KEY_AGE.remove(*key)
    _known_keys.clear()
    _known_keys.update(held)


FLUSH_INTERVAL = 1.0


async def sample_forever(ctx: ServerContext, interval: float = FLUSH_INTERVAL) -> None:
    """Flush the counts and refresh the gauges for scrapes another process answers."""
    while True:
        try:
            flush()
            sample(ctx)
        except Exception:
            log.exception("sampling metrics failed; will retry")
        await anyio.sleep(interval)


def process_exit() -> None:
    """This worker is stopping: its last counts in, its live gauges out of the shared view."""
    flush()
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


# -- exposition ---------------------------------------------------------------
def exposition_registry(*, shared: bool = MULTIPROCESS) -> CollectorRegistry:
    """What a scrape reads: the files of every worker (``shared``), or this process's."""
    if not shared:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


_exposed: CollectorRegistry | None = None


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` on the main app (when no separate metrics port is configured)."""
    global _exposed
    ctx: ServerContext = request.app.state.keyturn
    flush()
    sample(ctx)
    if _exposed is None:
        _exposed = exposition_registry()
    body = await anyio.to_thread.run_sync(generate_latest, _exposed)  # reads files
    return Response(
        body, headers={"Cache-Control": "no-store", "Content-Type": CONTENT_TYPE_LATEST}
    )


def serve_metrics(host: str, port: int, *, shared: bool) -> Any:
    """Serve the metrics on their own port from a thread of this process (``serve``'s).

    ``shared``: the workers are other processes, so read their files. Returns
    the HTTP server, to ``shutdown()`` on exit.
    """
    from prometheus_client import start_http_server

    registry = exposition_registry(shared=shared or MULTIPROCESS)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def prepare_serve(host: str, workers: int, metrics_port: int | None) -> None:
    """``keyturn serve``, before uvicorn starts: one view of N workers, and the metrics port.

    With several workers, each must write its values where the others' are:
    ``PROMETHEUS_MULTIPROC_DIR``, set here (a fresh private directory, removed
    at exit) unless the operator set one, and inherited by the workers, which
    uvicorn spawns as new processes that import prometheus-client afresh. One
    worker needs none of it: it is this process, whose metrics are in memory.
    ``metrics_port`` (``KEYTURN_METRICS_PORT``) is then served from a thread
    here, reading the workers' files (or, with one worker, this process).
    """
    shared = workers > 1
    if shared:
        path = os.environ.get(MULTIPROC_DIR)
        if path:  # the operator's: empty it between runs, as prometheus-client says
            os.makedirs(path, mode=0o700, exist_ok=True)
        else:
            path = tempfile.mkdtemp(prefix="keyturn-metrics-")  # mode 0700
            os.environ[MULTIPROC_DIR] = path
            atexit.register(shutil.rmtree, path, ignore_errors=True)
    if metrics_port is None:
        return
    try:
        server = serve_metrics(host, metrics_port, shared=shared)
    except OSError as exc:
        from keyturn.server.operator_errors import OperatorError

        raise OperatorError(
            f"cannot serve metrics on {host} port {metrics_port} (KEYTURN_METRICS_PORT): "
            f"{exc.strerror or exc}",
            "stop what uses that port, or choose another with KEYTURN_METRICS_PORT",
        ) from exc
    atexit.register(server.server_close)
