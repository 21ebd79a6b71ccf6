"""The admin API (``/admin/v1``): manage tokens and clients with an admin-scoped token.

Built on FastAPI so that the pydantic models below are the one source of both
validation and the served OpenAPI document (``/admin/v1/openapi.json``).

The main app mounts `LazyAdminApp`, not the FastAPI app itself: FastAPI and
the admin models took about a seventh of a cold start, and most processes of a
fleet never answer an admin request. So importing this package loads neither;
the first admin request of a process builds the app (``admin/app.py``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from keyturn.server.context import ServerContext


class LazyAdminApp:
    """The admin app as the main app mounts it: built on its first request, once.

    The build (importing FastAPI, pydantic's models, declaring the routes:
    a few hundred milliseconds on a loaded machine) runs on a worker thread, so
    the event loop keeps answering token requests meanwhile; concurrent first
    requests wait for the one build under a lock, then all use its app.
    """

    def __init__(self) -> None:
        self._context: ServerContext | None = None
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()  # not an event-loop lock: the build runs on threads

    @property
    def context(self) -> ServerContext | None:
        return self._context

    @context.setter
    def context(self, ctx: ServerContext) -> None:
        """Set by the main app's lifespan; handed to the admin app, now or when built."""
        with self._lock:
            self._context = ctx
            if self._app is not None:
                self._app.state.keyturn = ctx  # type: ignore[attr-defined]

    @property
    def built(self) -> bool:
        return self._app is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app
        if app is None:
            app = await anyio.to_thread.run_sync(self._build)
        await app(scope, receive, send)

    def _build(self) -> ASGIApp:
        with self._lock:
            if self._app is None:
                from keyturn.server.admin.app import create_admin_app
                from keyturn.storage.database import uses_postgres

                ctx = self._context
                app = create_admin_app(
                    postgres=ctx is not None and uses_postgres(ctx.settings.database_url)
                )
                app.state.keyturn = self._context
                self._app = app
            return self._app
