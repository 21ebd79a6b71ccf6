"""The ASGI application, built declaratively (Starlette routes, handlers, lifespan).

``create_app()`` with no argument reads ``KEYTURN_*`` settings: that is the
factory uvicorn workers import. Start-up connects storage, applies migrations
and loads (or creates) the signing key, so every worker is ready before it
accepts a request.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from keyturn.core.paths import (
    ADMIN_PATH,
    AUTHORIZE_PATH,
    INTROSPECTION_PATH,
    JWKS_PATH,
    LOGIN_PATH,
    PUBLIC_KEY_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
)
from keyturn.server import heap, lifecycle, metrics, token_service
from keyturn.server.admin import LazyAdminApp
from keyturn.server.bootstrap import build_context
from keyturn.server.context import ServerContext
from keyturn.server.endpoints.authorize import authorize_get, authorize_post
from keyturn.server.endpoints.health import Readiness, healthz, readyz
from keyturn.server.endpoints.introspection import introspection_endpoint
from keyturn.server.endpoints.jwks import jwks_endpoint, public_key_endpoint
from keyturn.server.endpoints.login import login_post
from keyturn.server.endpoints.metadata import metadata_endpoint, openid_configuration_endpoint
from keyturn.server.endpoints.revocation import revocation_endpoint
from keyturn.server.endpoints.token import token_app, token_endpoint
from keyturn.server.endpoints.userinfo import userinfo_endpoint
from keyturn.server.errors import bare_app, exception_handlers
from keyturn.server.nul_guard import RejectNulMiddleware, has_nul
from keyturn.server.request_id import request_ids
from keyturn.server.settings import Settings
from keyturn.server.vendors import FAST_PATHS as VENDOR_FAST_PATHS
from keyturn.server.vendors import routes as vendor_routes
from keyturn.storage.database import uses_postgres
from keyturn.storage.health import UNREACHABLE, database_fault

log = logging.getLogger("keyturn.server")


BACKGROUND_WORK_LIMIT = 10.0
"""Background database work is shielded from cancellation for this long at most.

Shutdown cancels the background tasks; a cancellation landing inside a
database call (an aiosqlite thread hand-off, an asyncpg round trip) could
leave a connection that ``dispose()`` then waited on for ever (one hang in
four runs of a fast purge loop). So a batch runs to its end, bounded by the
database's own 5 s timeouts and this limit, and cancellation is taken at the
next sleep."""


PURGE_ROUND_BATCHES = 100
"""10,000 rows a minute per process at the default batch: a server that keeps
issuing 160 tokens a second for good still purges as fast as its rows die."""


async def purge_once(ctx: ServerContext) -> int:
    """One round of `purge_forever`: up to `PURGE_ROUND_BATCHES` batches, counted
    and logged."""
    removed = (await token_service.purge(ctx, max_batches=PURGE_ROUND_BATCHES)).rows
    if removed:
        metrics.TOKENS_PURGED.inc(removed)
        log.info("purged %d expired or revoked token rows", removed)
    return removed


async def purge_forever(ctx: ServerContext) -> None:
    """Delete dead token rows in small batches, continuously, in every process.

    Bounded batches keep each delete short (no long table lock, no pause of the
    token endpoint); running everywhere needs no scheduler, and deleting the
    same rows twice is harmless.
    """
    interval = ctx.settings.purge_interval
    await anyio.sleep(random.uniform(0, interval))  # noqa: S311 - jitter, not secrecy
    while True:
        try:
            with anyio.move_on_after(BACKGROUND_WORK_LIMIT, shield=True):
                await purge_once(ctx)
        except Exception as exc:
            kind = database_fault(exc)
            if kind is None:
                log.exception("purging token rows failed; will retry")
            else:  # an outage: the storage's health logs it once
                ctx.storage.health.failed(exc, kind)
        await anyio.sleep(interval)


async def watch_database(ctx: ServerContext, interval: float = 0.5) -> None:
    """While the database is unreachable, try it twice a second, so that its
    recovery is noticed (and logged) even when no request comes to find out."""
    health = ctx.storage.health
    while True:
        await anyio.sleep(interval)
        if health.down == UNREACHABLE:
            with (
                contextlib.suppress(Exception),  # a failure is reported by the probe
                anyio.move_on_after(BACKGROUND_WORK_LIMIT, shield=True),
            ):
                await ctx.storage.probe()


Wrapper = Callable[[ASGIApp], ASGIApp]
"""An ASGI middleware as a function of the app it wraps."""

FAST_PATHS: dict[str, ASGIApp] = {
    TOKEN_PATH: token_app,
    INTROSPECTION_PATH: bare_app(introspection_endpoint),
    REVOCATION_PATH: bare_app(revocation_endpoint),
    **VENDOR_FAST_PATHS,
}
"""The fast path: ``POST`` to these paths goes straight to their ASGI app. The
token endpoint, and introspection, which a resource server may call on every
request it serves (Starlette's stack was a sixth of an introspection)."""


class KeyturnApp(Starlette):
    """Starlette, with ``POST`` to the `FAST_PATHS` dispatched before its stack.

    The token endpoint is the hot path: every token request of every client.
    Its handler does its own error mapping (`errors.bare_app`), so it needs none of
    the middleware, routing and request wrappers the other endpoints go
    through; skipping them took 8 % off a token request's instructions
    (valgrind, in-process, ES256). Anything else about such a request (another
    method, NUL in the query) falls through to the normal stack and its answers.

    ``outer`` wrappers see *every* request, the token fast path included, so
    what must hold for all of them (request ids, metrics) goes there, outermost
    first; Starlette's ``middleware`` sees only what the fast path does not take.
    """

    def __init__(self, *args: Any, outer: Sequence[Wrapper] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app: ASGIApp = self._dispatch
        for wrap in reversed(outer):
            app = wrap(app)
        self._outer = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._outer(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in FAST_PATHS
            and not has_nul(scope)
        ):
            scope["app"] = self
            await FAST_PATHS[scope["path"]](scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    context_hook: Callable[[ServerContext], None] | None = None,
) -> Starlette:
    settings = settings or Settings()
    metrics.configure(settings)

    admin = LazyAdminApp()  # FastAPI is imported on the first admin request

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx = await build_context(settings)
        if context_hook is not None:
            context_hook(ctx)
        app.state.keyturn = ctx
        admin.context = ctx
        lifecycle.drain_on_sigterm(settings.shutdown_drain)  # behind a balancer
        app.state.readiness = readiness = Readiness(ctx)
        try:
            await ctx.keyring.start_sign_processes(settings.resolved_sign_processes)
            if settings.gc_freeze:  # started: what exists now lives as long as the process
                log.debug(
                    "froze %d start-up objects (KEYTURN_GC_FREEZE)", heap.freeze_startup_heap()
                )
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(purge_forever, ctx)
                tasks.start_soon(ctx.denylist.run)
                tasks.start_soon(watch_database, ctx)
                tasks.start_soon(metrics.sample_forever, ctx)
                yield
                tasks.cancel_scope.cancel()
        finally:
            metrics.process_exit()
            await readiness.close()
            await ctx.denylist.close()
            await ctx.limiter.close()
            ctx.keyring.close()
            await ctx.storage.close()

    token_methods = ["POST"]
    routes: list[Any] = [
        # Probes first: nothing after them may shadow them.
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route(TOKEN_PATH, token_endpoint, methods=token_methods),
        Route(JWKS_PATH, jwks_endpoint, methods=["GET"]),
        Route(PUBLIC_KEY_PATH, public_key_endpoint, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", metadata_endpoint, methods=["GET"]),
        Route(REVOCATION_PATH, revocation_endpoint, methods=["POST"]),
        Route(INTROSPECTION_PATH, introspection_endpoint, methods=["POST"]),
        Route(AUTHORIZE_PATH, authorize_get, methods=["GET"]),
        Route(AUTHORIZE_PATH, authorize_post, methods=["POST"]),
        Route(LOGIN_PATH, login_post, methods=["POST"]),
        Route(USERINFO_PATH, userinfo_endpoint, methods=["GET", "POST"]),
        Route("/.well-known/openid-configuration", openid_configuration_endpoint, methods=["GET"]),
        Mount(ADMIN_PATH, admin),
        *vendor_routes(),  # Candid, Square and Authlete shapes (server/vendors/)
    ]
    if settings.metrics_port is None:  # else on their own port only (cli.py serve)
        routes.insert(2, Route("/metrics", metrics.metrics_endpoint, methods=["GET"]))
    # Outermost, around every request (the fast paths too): each answer carries
    # X-Request-ID, each log line the id, and the latency metric its route and
    # status (labels are the routes' own paths, never a raw one).
    timer = metrics.request_timer(
        [r.path for r in routes if isinstance(r, Route) and not r.param_convertors],
        [m.path for m in routes if isinstance(m, Mount)],
        [(r.path_regex, r.path) for r in routes if isinstance(r, Route) and r.param_convertors],
    )
    return KeyturnApp(
        routes=routes,
        outer=[functools.partial(request_ids, finished=timer)],
        # A draining process's 503 on /readyz (never a fast path) is counted and
        # logged like any answer, being inside the outer wrapper.
        middleware=[Middleware(lifecycle.answer_draining), Middleware(RejectNulMiddleware)],
        exception_handlers=exception_handlers(uses_postgres(settings.database_url)),
        lifespan=lifespan,
    )
