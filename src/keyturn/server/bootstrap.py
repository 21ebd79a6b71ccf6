"""Open storage, keys and limits for a set of settings: the server's and the CLI's start-up.

Kept apart from the ASGI app so the command line starts without importing
the web framework.
"""

from __future__ import annotations

from keyturn.keys.keyring import KeyRing
from keyturn.server.clients import ClientCache
from keyturn.server.context import ServerContext
from keyturn.server.denylist import create_denylist
from keyturn.server.issuance import TokenIssuer
from keyturn.server.ratelimit import InMemoryRateLimiter, RateLimiter
from keyturn.server.secrets import Hasher, pepper_from_settings
from keyturn.server.settings import Settings
from keyturn.storage import database
from keyturn.storage.repository import SqlStorage


async def open_storage(settings: Settings, *, migrate: bool = True) -> SqlStorage:
    """The database of ``settings``, migrated to the head unless ``migrate`` is off."""
    if settings.database_url is None:  # only the default location is made, never a URL's
        database.ensure_private_dir(settings.data_dir)
    storage = SqlStorage(database.create_engine(settings.resolved_database_url))
    if migrate:
        try:
            await database.upgrade(storage.engine)
        except BaseException:
            await storage.close()
            raise
    return storage


def settings_pepper(settings: Settings) -> bytes:
    """The pepper ``settings`` name: ``KEYTURN_PEPPER``, else the data directory's file."""
    return pepper_from_settings(
        settings.pepper.get_secret_value() if settings.pepper else None, settings.data_dir
    )


async def build_context(settings: Settings, *, migrate: bool = True) -> ServerContext:
    """Open storage and keys for ``settings``; the caller closes ``ctx.storage``."""
    pepper = settings_pepper(settings)
    storage = await open_storage(settings, migrate=migrate)
    engine = storage.engine
    try:
        hasher = Hasher(pepper)
        keyring = KeyRing(
            storage,
            pepper,
            alg=settings.signing_alg,
            activation_delay=settings.key_activation_delay,
            refresh_interval=settings.key_refresh_interval,
        )
        async with database.startup_lock(engine):  # one first key, however many start
            await keyring.ensure_key()
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
