"""The ``keyturn`` command: serve, manage clients and signing keys, migrate.

Every command reads the same ``KEYTURN_*`` settings as the server (global
``--data-dir`` and ``--database-url`` override them), so the CLI and a running
server always look at one database.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

try:
    import typer
    from rich.console import Console
    from rich.table import Table
    from typer.core import TyperOption
except ImportError:  # pragma: no cover - exercised only without the server extra
    sys.stderr.write('The keyturn command needs the server extra: pip install "keyturn[server]"\n')
    raise SystemExit(1) from None

from keyturn.core.errors import OAuthError
from keyturn.core.jose import SUPPORTED_ALGS
from keyturn.keys.jwt import decrypt_private_key
from keyturn.server import client_service, metrics, recorded_issuer, token_service
from keyturn.server.bootstrap import build_context, open_storage, settings_pepper
from keyturn.server.clients import NewClient
from keyturn.server.context import ServerContext
from keyturn.server.operator_errors import OperatorError, explain
from keyturn.server.settings import Settings, default_sign_processes
from keyturn.server.users import build_user, with_password
from keyturn.storage.records import Client, TokenRecord, User
from keyturn.storage.repository import TokenFilter, UserExistsError


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    """Typer 0.2x writes ``<bool>`` beside every on/off flag in help, a placeholder for
    a value that flags do not take; say nothing there, as click does."""
    return None if self.is_flag else _typed_column(self, ctx)


_typed_column = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

app = typer.Typer(help="Keyturn: OAuth 2.0 token server and tools.", no_args_is_help=True)
clients_app = typer.Typer(help="Register and manage OAuth clients.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys: list and rotate.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tokens_app = typer.Typer(help="List, mint, revoke and purge tokens.", no_args_is_help=True)
users_app = typer.Typer(
    help="User accounts for the login page and password grant.", no_args_is_help=True
)
app.add_typer(users_app, name="users")
app.add_typer(clients_app, name="clients")
app.add_typer(tokens_app, name="tokens")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")
_debug = False
"""``keyturn --debug``: configuration errors show their traceback too."""


def _print_version(value: bool) -> None:
    if value:
        from keyturn import __version__

        sys.stdout.write(f"keyturn {__version__}\n")
        raise typer.Exit()


@app.callback()
def main_options(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where SQLite, the pepper and keys live (before or after the command)."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL, e.g. postgresql://user@host/db.")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of configuration errors too.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    global _debug
    _debug = debug
    # Environment, not globals: `serve` workers are new processes and read it too.
    if data_dir is not None:
        os.environ["KEYTURN_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        os.environ["KEYTURN_DATABASE_URL"] = database_url


def _run(
    work: Callable[[ServerContext], Awaitable[T]],
    settings: Settings | None = None,
    *,
    create: bool = True,
) -> T:
    """Run ``work`` on the settings' context. Commands that only read pass ``create=False``:
    a missing database or pepper is then an error, not a new empty one to report on."""
    settings = settings or Settings()

    async def runner() -> T:
        ctx = await build_context(settings, create=create)
        try:
            return await work(ctx)
        finally:
            await ctx.denylist.close()
            await ctx.limiter.close()
            ctx.keyring.close()
            await ctx.storage.close()

    return _guarded(settings, runner)


def _guarded(settings: Settings, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work``; an OAuth refusal or an operator's mistake is a one-line error."""
    try:
        return asyncio.run(work())
    except OAuthError as exc:
        raise _fail(exc.description or exc.error) from None
    except Exception as exc:
        # Here the settings are known, so a path or URL is named by its setting.
        problem = explain(exc, settings)
        if problem is None:
            raise
        raise problem from exc


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def _declined(what: str) -> typer.Exit:
    """A confirmation answered "no": say that nothing happened (status 1, as before)."""
    err_console.print(f"aborted: {what} (use --yes to skip the question)")
    return typer.Exit(1)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


# -- serve -------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    sign_processes: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Helper processes per server process that sign RSA tokens under load "
            "(0 = threads only; default: cores / workers, at most 4).",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL (default: SQLite in the data directory)."),
    ] = None,
    issuer: Annotated[
        str | None, typer.Option(help="Public base URL (the JWT iss); default from host/port.")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    log_level: Annotated[
        str | None,
        typer.Option(help="critical, error, warning, info or debug (default: KEYTURN_LOG_LEVEL)."),
    ] = None,
) -> None:
    """Run the token server (migrations and the first signing key are set up first)."""
    import logging.config

    import uvicorn

    from keyturn.server.logging_config import log_config, say_for

    if database_url is not None:
        os.environ["KEYTURN_DATABASE_URL"] = database_url

    if issuer is None and "KEYTURN_ISSUER" not in os.environ:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        issuer = f"http://{shown}:{port}"
    if issuer is not None:
        os.environ["KEYTURN_ISSUER"] = issuer
    if sign_processes is None and "KEYTURN_SIGN_PROCESSES" not in os.environ and workers > 1:
        sign_processes = default_sign_processes(workers)  # cores, not cores x workers
    if sign_processes is not None:
        os.environ["KEYTURN_SIGN_PROCESSES"] = str(sign_processes)
    if log_level is not None:
        os.environ["KEYTURN_LOG_LEVEL"] = log_level
    # This process and its workers are the server's own (keyturn/server/heap.py).
    os.environ.setdefault("KEYTURN_GC_FREEZE", "true")
    settings = Settings()
    # KEYTURN_LOG_FORMAT / _LOG_LEVEL, here and (through uvicorn) in every worker.
    logging_setup = log_config(settings.log_format, settings.log_level, access_log=access_log)
    logging.config.dictConfig(logging_setup)

    if workers == 1:  # with several, uvicorn binds once in this process and says why
        _check_port(host, port)  # before migrating: a busy port is the one error shown
    clients = _prepare_database(settings)
    where = _shown_url(settings.database_url) or str(settings.data_dir / "keyturn.db")
    # Plain lines on stderr, never wrapped: people copy the curl command (or JSON log lines).
    say = say_for(settings.log_format)
    try:  # so that `keyturn tokens create` mints tokens with this iss (recorded_issuer)
        recorded_issuer.record(settings)
    except OSError as exc:
        say(
            f"warning: cannot record the issuer in {recorded_issuer.issuer_path(settings)} "
            f"({exc.strerror or exc}); other keyturn commands need KEYTURN_ISSUER\n"
        )
    say(f"Keyturn issuer {settings.issuer_url}  database {where}\n")
    if not clients:
        say(
            "No clients yet. Create one in another terminal:\n"
            "  keyturn clients create --name my-service --scope read\n"
            "then get a token with the id and secret it prints:\n"
            "  curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials "
            f"{settings.issuer_url}/oauth/token\n"
        )
    # PROMETHEUS_MULTIPROC_DIR for the workers, KEYTURN_METRICS_PORT (server/metrics.py).
    metrics.prepare_serve(host, workers, settings.metrics_port)
    uvicorn.run(
        "keyturn.server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # request_id.py writes the access line, without the query string
        log_level=settings.log_level,
        log_config=logging_setup,
        # X-Forwarded-For only from the proxies KEYTURN_FORWARDED_ALLOW_IPS names (lockouts
        # count per source address); never Host or X-Forwarded-Host: the issuer is a setting.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        server_header=False,
        # Deadlines for request heads and bodies, a cap on open connections
        # (KEYTURN_HEADER_TIMEOUT etc.; the module says why a protocol subclass).
        http="keyturn.server.http_protocol:KeyturnHttpProtocol",
    )


def _prepare_database(settings: Settings) -> list[Client]:
    """Migrate once, before any worker starts, and read the clients for the hint.

    Only storage: the key ring, the signing helpers and Redis are each worker's
    own start (the first key is made there, under the start-up lock), so the
    server is not started twice over (issue 18, cold start)."""

    async def prepare() -> list[Client]:
        pepper = settings_pepper(settings)  # a missing, unreadable or bad one: said here, once
        storage = await open_storage(settings)
        try:
            # Another pepper than the keys were made with: said here too, not as the
            # workers' tracebacks. Only the decryption: each worker's key ring checks
            # the key itself when it loads it (RSA's check alone is 40 ms of cold start).
            keys = await storage.list_signing_keys()
            if keys:
                decrypt_private_key(keys[-1].private_key, pepper, validate=False)
            return await storage.list_clients()
        finally:
            await storage.close()

    return _guarded(settings, prepare)


def _shown_url(url: str | None) -> str | None:
    """A database URL as it may be logged: with its password masked."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _check_port(host: str, port: int) -> None:
    """Bind once before uvicorn does, so a busy or forbidden address is a clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind((host, port))
    except OSError as exc:
        raise OperatorError(
            f"cannot listen on {host} port {port} (--host, --port): {exc.strerror or exc}",
            "stop what uses that port, or choose another with --port (or --host)",
        ) from exc


# -- db ----------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations ('keyturn serve' also does this on start)."""

    async def work(ctx: ServerContext) -> str | None:
        from keyturn.storage.database import current_revision

        return await current_revision(ctx.storage.engine)

    revision = _run(work)
    console.print(f"database at revision {revision}")


# -- clients -----------------------------------------------------------------
def _secrets_text(secrets: list[dict[str, Any]]) -> str:
    """One line per working secret: its label, and when a previous one stops working."""
    lines = []
    for secret in secrets:
        made, expires = secret["created_at"], secret["expires_at"]
        if expires:
            lines.append(f"{secret['label']} until {_utc(expires)}")
        else:
            lines.append(f"{secret['label']} since {_utc(made)}" if made else secret["label"])
    return "\n".join(lines) or "-"


def _utc(stamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


def _client_table(clients: list[Client]) -> Table:
    table = Table("name", "type", "grants", "scopes", "lifetime", "rate/min", "secrets")
    table.add_column("client_id", no_wrap=True, overflow="fold")
    now = time.time()
    for c in clients:
        table.add_row(
            c.name,
            "public" if c.is_public else "confidential",
            " ".join(c.grant_types),
            " ".join(c.scopes),
            str(c.access_token_lifetime or "default"),
            str(c.rate_limit if c.rate_limit is not None else "default"),
            _secrets_text(c.secrets_dict(now)),
            c.client_id,
        )
    return table


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="A label for people.")] = "",
    client_id: Annotated[str | None, typer.Option(help="Choose the id (default: random).")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Allowed scope (repeat).")] = None,
    audience: Annotated[list[str] | None, typer.Option(help="Allowed audience (repeat).")] = None,
    grant: Annotated[list[str] | None, typer.Option(help="Allowed grant type (repeat).")] = None,
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Redirect URI (repeat).")] = None,
    public: Annotated[bool, typer.Option(help="A public client (no secret).")] = False,
    auth_method: Annotated[
        list[str] | None, typer.Option(help="Pin token endpoint auth method(s).")
    ] = None,
    lifetime: Annotated[int | None, typer.Option(help="Access token lifetime, seconds.")] = None,
    rate_limit: Annotated[
        int | None, typer.Option(help="Tokens per minute (0 = unlimited).")
    ] = None,
    can_introspect: Annotated[
        bool, typer.Option(help="May introspect any token (a resource server).")
    ] = False,
    allow_plain_pkce: Annotated[
        bool, typer.Option(help="Accept PKCE 'plain' (legacy clients only).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Register a client; its secret is printed once and only its hash is kept."""
    settings = Settings()

    async def work(ctx: ServerContext) -> NewClient:
        return await client_service.create(
            ctx,
            client_id=client_id,
            name=name,
            public=public,
            grant_types=grant or ["client_credentials"],
            scopes=scope or [],
            audiences=audience or [],
            redirect_uris=redirect_uri or [],
            auth_methods=auth_method,
            access_token_lifetime=lifetime,
            rate_limit=rate_limit,
            can_introspect=can_introspect,
            allow_plain_pkce=allow_plain_pkce,
        )

    new = _run(work, settings)
    client, secret = new.client, new.secret
    if as_json:
        _print_json({**client.public_dict(), "client_secret": secret})
        return
    # Plain lines, never wrapped or truncated: people copy these.
    print(f"client_id:     {client.client_id}")
    if secret:
        print(f"client_secret: {secret}")
        print("(the secret is shown once and only its hash is kept: store it now)")
        try:
            server = recorded_issuer.resolve(settings).issuer_url
        except recorded_issuer.UnknownIssuerError:
            server = None
        print("get a token:" if server else "get a token (SERVER: the server's public URL):")
        print(
            f"  curl -s -u '{client.client_id}:{secret}' -d grant_type=client_credentials "
            f"{server or 'SERVER'}/oauth/token"
        )


@clients_app.command("list")
def clients_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List registered clients."""

    async def work(ctx: ServerContext) -> list[Client]:
        return await ctx.storage.list_clients()

    clients = _run(work, create=False)
    if as_json:
        _print_json([c.public_dict() for c in clients])
    else:
        console.print(_client_table(clients))


def _get_client(client_id: str) -> Client:
    async def work(ctx: ServerContext) -> Client | None:
        return await ctx.storage.get_client(client_id)

    client = _run(work, create=False)
    if client is None:
        raise _fail(f"no client {client_id!r}")
    return client


@clients_app.command("show")
def clients_show(
    client_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show one client (never its secret)."""
    client = _get_client(client_id)
    if as_json:
        _print_json(client.public_dict())
        return
    table = Table("field", "value")
    for key, value in client.public_dict().items():
        if key == "secrets":
            shown = _secrets_text(value)
        elif key in ("created_at", "updated_at"):
            shown = _utc(int(value))
        else:
            shown = " ".join(value) if isinstance(value, list) else str(value)
        table.add_row(key, shown)
    console.print(table)


@clients_app.command("delete")
def clients_delete(
    client_id: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Delete a client and its tokens; live ones are revoked first (deny-list too)."""
    if not yes and not typer.confirm(f"Delete client {client_id} and revoke all its tokens?"):
        raise _declined(f"client {client_id} was not deleted")

    async def work(ctx: ServerContext) -> list[TokenRecord]:
        return await client_service.delete(ctx, client_id)

    ids = [r.token_id for r in _run(work)]
    if as_json:
        _print_json({"deleted": client_id, "revoked": len(ids), "token_ids": ids})
    else:
        console.print(f"deleted client {client_id}; revoked {len(ids)} token(s)")


@clients_app.command("rotate-secret")
def clients_rotate_secret(
    client_id: str,
    overlap: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=366 * 24 * 3600,
            help="Seconds the old secret keeps working (0: it stops at once). "
            "Default: KEYTURN_SECRET_ROTATION_OVERLAP (86400).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Give a client a new secret (printed once); the old one works for the overlap, then stops."""

    async def work(ctx: ServerContext) -> NewClient:
        return await client_service.rotate_secret(ctx, client_id, overlap=overlap)

    new = _run(work)
    secrets = new.client.secrets_dict(time.time())
    if as_json:
        _print_json({"client_id": client_id, "client_secret": new.secret, "secrets": secrets})
        return
    print(f"client_secret: {new.secret}")
    print("(shown once; store it now)")
    previous = [s for s in secrets if s["label"] == "previous"]
    if previous:
        print(f"the old secret works until {_utc(previous[0]['expires_at'])}")
        print(f"  (end it sooner: keyturn clients expire-old-secret {client_id})")
    else:
        print("the old secret no longer works")


@clients_app.command("expire-old-secret")
def clients_expire_old_secret(
    client_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Stop the previous secret now (e.g. it leaked); only the current one works after."""

    async def work(ctx: ServerContext) -> Client:
        return await client_service.expire_previous_secret(ctx, client_id)

    client = _run(work)
    if as_json:
        _print_json(client.public_dict())
    else:
        console.print(
            f"client {client_id}: only the current secret works now "
            "(in running servers within KEYTURN_CLIENT_CACHE_TTL seconds)"
        )


# -- keys --------------------------------------------------------------------
def _ts(value: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value)) if value else "-"


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List signing keys: pending (published, not signing yet), active, retired."""

    async def work(ctx: ServerContext) -> list[dict[str, Any]]:
        return [asdict(s) for s in await ctx.keyring.statuses()]

    rows = _run(work, create=False)
    if as_json:
        _print_json(rows)
        return
    table = Table("alg", "state", "signs from (UTC)", "retired (UTC)")
    table.add_column("kid", no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(
            row["alg"], row["state"], _ts(row["activates_at"]), _ts(row["retired_at"]), row["kid"]
        )
    console.print(table)


@keys_app.command("rotate")
def keys_rotate(
    alg: Annotated[
        str | None, typer.Option(help=f"One of {', '.join(SUPPORTED_ALGS)} (default: settings).")
    ] = None,
    delay: Annotated[
        int | None,
        typer.Option(min=0, help="Seconds before the new key signs (default from settings)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Publish a new signing key now; it starts signing after the delay."""

    async def work(ctx: ServerContext) -> dict[str, Any]:
        return asdict(await ctx.keyring.rotate(alg=alg, delay=delay))

    try:
        row = _run(work)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _print_json(row)
    else:
        starts = _ts(row["activates_at"])
        console.print(f"published key {row['kid']} ({row['alg']}); it signs from {starts} UTC")


# -- tokens ------------------------------------------------------------------
def _token_table(records: list[TokenRecord]) -> Table:
    now = time.time()
    table = Table()
    # The id and state are what people act on: never truncated.
    table.add_column("token_id", no_wrap=True, overflow="fold", min_width=22)
    table.add_column("state", no_wrap=True, min_width=7)
    table.add_column("kind", no_wrap=True)
    table.add_column("client")
    table.add_column("subject")
    table.add_column("scopes")
    table.add_column("expires (UTC)")
    for r in records:
        state = "revoked" if r.revoked_at else ("active" if r.is_active(now) else "expired")
        kind = {"access_token": "access", "refresh_token": "refresh"}.get(r.kind, r.kind)
        table.add_row(
            r.token_id, state, kind, r.client_id, r.subject or "", r.scope, _ts(r.expires_at)
        )
    return table


@tokens_app.command("list")
def tokens_list(
    client_id: Annotated[str | None, typer.Option(help="Only this client's tokens.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only this subject's tokens.")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Only live / only dead tokens.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Page size.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Cursor from the previous page.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List tokens, newest first (never their values)."""

    async def work(ctx: ServerContext) -> token_service.TokenPage:
        flt = TokenFilter(client_id=client_id, subject=subject, active=active)
        return await token_service.list_tokens(ctx, flt, limit, cursor)

    page = _run(work, create=False)
    if as_json:
        now = time.time()
        _print_json(
            {"items": [r.admin_dict(now) for r in page.items], "next_cursor": page.next_cursor}
        )
        return
    console.print(_token_table(page.items))
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


@tokens_app.command("show")
def tokens_show(
    token_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show one token by its identifier (the JWT's jti)."""

    async def work(ctx: ServerContext) -> TokenRecord:
        return await token_service.get_token(ctx, token_id)

    record = _run(work, create=False)
    data = record.admin_dict(time.time())
    if as_json:
        _print_json(data)
        return
    table = Table("field", "value")
    for key, value in data.items():
        shown = " ".join(value) if isinstance(value, list) else str(value)
        if key.endswith("_at") and isinstance(value, int):
            shown = _ts(value) + " UTC"
        table.add_row(key, shown)
    console.print(table)


@tokens_app.command("create")
def tokens_create(
    client_id: Annotated[str, typer.Option(help="The client the token is for.")],
    subject: Annotated[str | None, typer.Option(help="The sub (default: the client).")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Scope (repeat).")] = None,
    audience: Annotated[list[str] | None, typer.Option(help="Audience (repeat).")] = None,
    lifetime: Annotated[int | None, typer.Option(min=1, help="Seconds.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Mint an access token directly; its value is printed once."""

    async def work(ctx: ServerContext) -> dict[str, Any]:
        issued = await token_service.create(
            ctx,
            client_id=client_id,
            subject=subject,
            scopes=scope,
            audience=audience,
            lifetime=lifetime,
        )
        return {**issued.response(), "token_id": issued.record.token_id}

    try:
        settings = recorded_issuer.resolve(Settings())
    except recorded_issuer.UnknownIssuerError as exc:
        raise _fail(str(exc)) from None
    data = _run(work, settings)
    if as_json:
        _print_json(data)
    else:
        print(f"token_id:     {data['token_id']}")
        print(f"expires_in:   {data['expires_in']}")
        print(f"access_token: {data['access_token']}")


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str | None, typer.Argument(help="The token's identifier.")] = None,
    token: Annotated[
        str | None, typer.Option(help="The token value instead of its identifier.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Revoke one token (a refresh token takes its whole family)."""
    if token_id is None and token is None:
        raise _fail("give the token's id (keyturn tokens revoke TOKEN_ID) or --token VALUE")
    if token_id is not None and token is not None:
        raise _fail("give a token id or --token VALUE, not both")

    async def work(ctx: ServerContext) -> list[str]:
        if token is not None:
            record = await token_service.find_by_value(ctx, token)
            if record is None:
                raise token_service.NotFoundError("no token with that value")
        else:
            assert token_id is not None
            record = await token_service.get_token(ctx, token_id)
        return [r.token_id for r in await token_service.revoke(ctx, record)]

    ids = _run(work)
    if as_json:
        _print_json({"revoked": len(ids), "token_ids": ids})
    else:
        console.print(f"revoked {len(ids)} token(s)")


@tokens_app.command("revoke-all")
def tokens_revoke_all(
    client_id: Annotated[str | None, typer.Option(help="Every token of this client.")] = None,
    subject: Annotated[str | None, typer.Option(help="Every token of this subject.")] = None,
    access_only: Annotated[
        bool, typer.Option("--access-only", help="Keep refresh tokens.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Revoke every live token of a client and/or a subject."""

    async def work(ctx: ServerContext) -> list[str]:
        revoked = await token_service.revoke_all(
            ctx, client_id=client_id, subject=subject, access_tokens_only=access_only
        )
        return [r.token_id for r in revoked]

    ids = _run(work)
    if as_json:
        _print_json({"revoked": len(ids), "token_ids": ids})
    else:
        console.print(f"revoked {len(ids)} token(s)")


@tokens_app.command("purge")
def tokens_purge(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Delete rows expired or revoked longer ago than KEYTURN_PURGE_RETENTION, now."""

    async def work(ctx: ServerContext) -> int:
        return (await token_service.purge(ctx)).rows

    purged = _run(work)
    if as_json:
        _print_json({"purged": purged})
    else:
        console.print(f"purged {purged} row(s)")


# -- users -------------------------------------------------------------------
def _read_password(password: str | None, stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    if password is not None:
        return password
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@users_app.command("create")
def users_create(
    username: str,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    password: Annotated[
        str | None, typer.Option(help="The password (prompted for when omitted).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create a user (the password is stored as an argon2id hash)."""
    secret = _read_password(password, password_stdin)

    async def work(ctx: ServerContext) -> User:
        user = build_user(username, secret, name)
        await ctx.storage.create_user(user)
        return user

    try:
        user = _run(work)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    except UserExistsError:
        raise _fail(f"a user {username!r} exists already") from None
    if as_json:
        _print_json(user.public_dict())
    else:
        print(f"user_id:  {user.user_id}")
        print(f"username: {user.username}")


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List users."""

    async def work(ctx: ServerContext) -> list[User]:
        return await ctx.storage.list_users()

    users = _run(work, create=False)
    if as_json:
        _print_json([u.public_dict() for u in users])
        return
    table = Table("username", "name", "created (UTC)")
    table.add_column("user_id", no_wrap=True, overflow="fold")
    for u in users:
        table.add_row(u.username, u.name, _ts(u.created_at), u.user_id)
    console.print(table)


@users_app.command("delete")
def users_delete(
    username: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a user, their sessions and consents, and revoke their tokens."""
    if not yes and not typer.confirm(f"Delete user {username} and revoke their tokens?"):
        raise _declined(f"user {username} was not deleted")

    async def work(ctx: ServerContext) -> int | None:
        user = await ctx.storage.get_user_by_name(username)
        if user is None:
            return None
        revoked = await token_service.revoke_all(ctx, client_id=None, subject=user.user_id)
        await ctx.storage.delete_user(user.user_id)
        return len(revoked)

    revoked = _run(work)
    if revoked is None:
        raise _fail(f"no user {username!r}")
    console.print(f"deleted user {username}; revoked {revoked} token(s)")


@users_app.command("set-password")
def users_set_password(
    username: str,
    password: Annotated[
        str | None, typer.Option(help="The new password (prompted for when omitted).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set a user's password."""
    secret = _read_password(password, password_stdin)

    async def work(ctx: ServerContext) -> bool:
        user = await ctx.storage.get_user_by_name(username)
        if user is None:
            return False
        return await ctx.storage.update_user(with_password(user, secret))

    try:
        found = _run(work)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if not found:
        raise _fail(f"no user {username!r}")
    console.print(f"password of {username} changed")


_GLOBAL_VALUED = ("--data-dir", "--database-url")
_GLOBAL_FLAGS = ("--debug",)


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with the global options moved before the command, so that
    ``keyturn clients list --data-dir D`` means ``keyturn --data-dir D clients list``
    (click reads an option only at the level that defines it). ``serve
    --database-url`` has its own option that means the same. After ``--`` nothing
    moves."""
    front: list[str] = []
    rest: list[str] = []
    command_seen = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        takes_value = name in _GLOBAL_VALUED and "=" not in arg
        if not command_seen and not arg.startswith("-"):
            command_seen = True
            rest.append(arg)
        elif not command_seen or arg in _GLOBAL_FLAGS or name in _GLOBAL_VALUED:
            front.append(arg)
            if takes_value and i + 1 < len(args):
                i += 1
                front.append(args[i])
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main() -> None:
    """Run the command; a configuration or environment failure is two lines and status 2.

    Anything else propagates with its traceback: it is a bug.
    """
    try:
        app(args=hoist_global_options(sys.argv[1:]))
    except Exception as exc:
        problem = explain(exc)
        if problem is None:
            raise
        if _debug:
            traceback.print_exception(exc)
        sys.stderr.write(f"{problem}\n")
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
