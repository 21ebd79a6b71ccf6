"""Open storage, keys and limits for a set of settings: the server's and the CLI's start-up.

Kept apart from the ASGI app so the command line starts without importing
the web framework.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from keyturn.keys.keyring import KeyRing
from keyturn.server.clients import ClientCache
from keyturn.server.context import ServerContext
from keyturn.server.denylist import create_denylist
from keyturn.server.issuance import TokenIssuer
from keyturn.server.operator_errors import DATA_DIR, DATABASE_URL, OperatorError, database_where
from keyturn.server.ratelimit import InMemoryRateLimiter, RateLimiter
from keyturn.server.secrets import Hasher, pepper_from_settings
from keyturn.server.settings import Settings
from keyturn.storage import database
from keyturn.storage.repository import SqlStorage


async def open_storage(
    settings: Settings, *, migrate: bool = True, create: bool = True
) -> SqlStorage:
    """The database of ``settings``, migrated to the head unless ``migrate`` is off.

    With ``create`` off (commands that only read) nothing is made or migrated: a
    missing SQLite file or a schema not at the head is an `OperatorError`.
    """
    if not create:
        _require_database(settings)
    elif settings.database_url is None:  # only the default location is made, never a URL's
        database.ensure_private_dir(settings.data_dir)
    storage = SqlStorage(database.create_engine(settings.resolved_database_url))
    try:
        if not create:
            await _require_schema(storage, settings)
        elif migrate:
            await database.upgrade(storage.engine)
    except BaseException:
        await storage.close()
        raise
    return storage


def _setting(settings: Settings) -> tuple[str, str]:
    """The setting that names the database, and what it should name."""
    if settings.database_url is None:
        return DATA_DIR, "the server's data directory"
    return DATABASE_URL, "the server's database"


def _require_database(settings: Settings) -> None:
    """Refuse a SQLite file that is not there, rather than make an empty one: a mistyped
    data directory would otherwise be reported as a server with nothing in it."""
    url = make_url(settings.resolved_database_url)
    path = url.database
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:" or url.query:
        return  # a database server's: connecting says whether it is there
    if not Path(path).exists():
        setting, target = _setting(settings)
        raise OperatorError(
            f"no Keyturn database: {path} does not exist ({setting})",
            f"point {setting} at {target}, or make a new one: keyturn db upgrade "
            "(or keyturn serve)",
        )


async def _require_schema(storage: SqlStorage, settings: Settings) -> None:
    """Refuse a schema behind this Keyturn's instead of migrating it (commands that only
    read); one that a newer Keyturn made is said as such (operator_errors)."""
    found = await database.schema_revisions(storage.engine)
    head = database.head_revision()
    if found == [head]:
        return
    where = database_where(settings)
    if found:
        scripts = database.script_directory()
        for revision in filter(None, found):
            scripts.get_revision(revision)  # an unknown one raises "Can't locate revision"
        problem = f"the schema of {where} is at {', '.join(map(str, found))}, behind {head}"
    else:
        problem = f"{where} has no Keyturn tables"
    setting, target = _setting(settings)
    raise OperatorError(
        problem,
        f"run keyturn db upgrade (keyturn serve also migrates), or point {setting} at {target}",
    )


def settings_pepper(settings: Settings, *, create: bool = True) -> bytes:
    """The pepper ``settings`` name: ``KEYTURN_PEPPER``, else the data directory's file
    (made when missing, unless ``create`` is off)."""
    return pepper_from_settings(
        settings.pepper.get_secret_value() if settings.pepper else None,
        settings.data_dir,
        create=create,
    )


async def build_context(
    settings: Settings, *, migrate: bool = True, create: bool = True
) -> ServerContext:
    """Open storage and keys for ``settings``; the caller closes ``ctx.storage``.

    With ``create`` off (commands that only read) no directory, database, schema,
    pepper or signing key is made: a missing one is an operator error.
    """
    # Reading opens the database first: a mistyped data directory is said as that,
    # not as a missing pepper.
    pepper = settings_pepper(settings) if create else None
    storage = await open_storage(settings, migrate=migrate, create=create)
    engine = storage.engine
    try:
        if pepper is None:
            pepper = settings_pepper(settings, create=False)
        hasher = Hasher(pepper)
        keyring = KeyRing(
            storage,
            pepper,
            alg=settings.signing_alg,
            activation_delay=settings.key_activation_delay,
            refresh_interval=settings.key_refresh_interval,
            prune=create,  # a command that only reads deletes no retired key either
        )
        if create:
            async with database.startup_lock(engine):  # one first key, however many start
                await keyring.ensure_key()
        else:
            await keyring.refresh(force=True)  # loads the keys (checks the pepper), makes none
    except BaseException:
        await storage.close()
        raise
    return ServerContext(
        settings=settings,
        storage=storage,
        hasher=hasher,
        keyring=keyring,
        issuer=TokenIssuer(storage, keyring, hasher, settings.issuer_url),
        clients=ClientCache(storage, settings.client_cache_ttl),
        limiter=create_limiter(settings),
        denylist=create_denylist(
            settings.redis_url,
            storage,
            prefix=settings.redis_prefix,
            interval=settings.denylist_sync_interval,
            timeout=settings.redis_timeout,
        ),
    )


def create_limiter(settings: Settings) -> RateLimiter:
    """Shared limits through Redis when a fleet has it, else per process."""
    if settings.redis_url:
        from keyturn.server.redis_ratelimit import RedisRateLimiter

        return RedisRateLimiter(
            settings.redis_url, prefix=settings.redis_prefix, timeout=settings.redis_timeout
        )
    return InMemoryRateLimiter()
