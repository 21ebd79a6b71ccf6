"""Server configuration from ``KEYTURN_*`` environment variables (pydantic-settings).

Every default is what a laptop needs: SQLite in a data directory, a pepper file
created on first start, RS256 keys. A fleet sets ``KEYTURN_DATABASE_URL`` to
PostgreSQL and ``KEYTURN_PEPPER`` to one shared secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyturn.server.secrets import pepper_bytes
from keyturn.storage.database import normalize_database_url

# Both names of Ed25519 signing: "Ed25519" (RFC 9864) and "EdDSA" (RFC 8037, which
# older verifiers know); the same list as core.jose.SUPPORTED_ALGS (a test checks).
SigningAlg = Literal["RS256", "ES256", "EdDSA", "Ed25519"]


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "keyturn"


MAX_DEFAULT_SIGN_PROCESSES = 4
"""One event loop spends about 100 us per token, so it cannot keep more than two
or three cores busy with RSA signatures (~200 us each); more helpers would idle."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_sign_processes(workers: int) -> int:
    return max(1, min(MAX_DEFAULT_SIGN_PROCESSES, usable_cores() // workers))


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
DATABASE_URL_EXAMPLE = "postgresql://USER@HOST/DB or sqlite:////ABSOLUTE/PATH.db"


def check_database_url(url: str) -> None:
    """Raise ValueError unless ``url`` names a database with an async driver Keyturn uses.

    Only parses and loads the dialect: the driver itself (asyncpg) is imported
    when the engine is made, so a missing one is reported there, by its name.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(normalize_database_url(url))
        dialect = parsed.get_dialect()
    except NoSuchModuleError:  # a subclass of ArgumentError: first
        raise ValueError(
            f"unknown database {url.partition(':')[0]!r}; use {DATABASE_URL_EXAMPLE}"
        ) from None
    except ArgumentError:
        raise ValueError(f"not a database URL; use {DATABASE_URL_EXAMPLE}") from None
    if not getattr(dialect, "is_async", False):
        raise ValueError(
            f"{parsed.drivername!r} is not an asynchronous driver; use {DATABASE_URL_EXAMPLE}"
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEYTURN_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    issuer: str = "http://127.0.0.1:8000"
    pepper: SecretStr | None = None

    access_token_lifetime: int = Field(default=5 * 3600, gt=0)
    default_audience: str | None = None
    refresh_token_lifetime: int = Field(default=30 * 24 * 3600, gt=0)
    refresh_grace_period: int = Field(default=5, ge=0)
    """Seconds in which presenting a just-rotated refresh token replays the same answer."""

    signing_alg: SigningAlg = "RS256"
    key_activation_delay: int = Field(default=3600, ge=0)
    key_refresh_interval: float = Field(default=30.0, gt=0)
    sign_processes: int | None = Field(default=None, ge=0)
    """Helper processes that sign RSA tokens under load (0 = threads only).

    Default: one per usable core, at most `MAX_DEFAULT_SIGN_PROCESSES`."""

    gc_freeze: bool = False
    """Once started, keep the start-up heap out of the garbage collector's full
    collections (`keyturn.server.heap`); `keyturn serve` turns it on."""

    token_rate_limit: int = Field(default=120, ge=0)
    """Tokens a client may obtain per minute (0 = unlimited); per-client override."""
    auth_failure_limit: int = Field(default=10, ge=0)
    """Failed authentications per client id and source address per ``auth_failure_window``
    before that client id is locked out for that address (server/lockout.py)."""
    auth_failure_window: int = Field(default=300, gt=0)
    auth_failure_address_limit: int = Field(default=100, ge=0)
    """Failed authentications from one source address per ``auth_failure_window``,
    whatever the client ids or usernames, before that address is throttled."""

    code_lifetime: int = Field(default=60, gt=0)
    """Authorization codes are single-use and live this long (RFC 9700: short)."""
    id_token_lifetime: int = Field(default=3600, gt=0)
    session_lifetime: int = Field(default=12 * 3600, gt=0)
    """How long a login on the authorization pages lasts."""
    login_failure_limit: int = Field(default=5, ge=0)
    """Failed logins per username per ``auth_failure_window`` before a lockout."""

    redis_url: str | None = None
    """Redis for the shared revocation deny-list that guards read (optional)."""
    redis_prefix: str = Field(default="keyturn:", min_length=1)
    """Prefix of every Redis key: deny-list ``{prefix}revoked:{jti}``, limits ``{prefix}rl:``."""
    redis_timeout: float = Field(default=0.1, gt=0)
    """Seconds a request waits for Redis before it falls back (then a circuit breaker)."""
    denylist_sync_interval: float = Field(default=1.0, gt=0)
    """How often each process publishes pending revocations and checks Redis lost none."""
    renew_window: int = Field(default=3600, ge=0)
    """An access token may be renewed once it has at most this many seconds left."""
    square_renew_grace: int = Field(default=15 * 24 * 3600, ge=0)
    """Square's RenewToken: any time before expiry and up to this long after it."""
    purge_retention: int = Field(default=7 * 24 * 3600, ge=0)
    """Expired or revoked token rows are deleted this many seconds later."""
    purge_interval: float = Field(default=60.0, gt=0)
    purge_batch: int = Field(default=100, gt=0)
    """Token rows deleted per transaction: on SQLite, writers wait for one batch
    at most (100 rows: 1-2 ms; 500: 4-7 ms on a 500,000-row table)."""

    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    client_cache_ttl: float = Field(default=5.0, ge=0)

    # What one request or connection may hold (admin/guard.py, http_protocol.py).
    max_admin_body_bytes: int = Field(default=1024 * 1024, gt=0)
    """Largest admin API request body; a larger declared one is 413 before it is read."""
    body_timeout: float = Field(default=20.0, gt=0)
    """Seconds a request body may take to arrive once its head has; then 408 and close."""
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a connection has to send a whole request head, from its opening (or the
    end of the previous response); trickling does not extend it. Then it is closed."""
    keepalive_timeout: float = Field(default=5.0, gt=0)
    """Seconds an idle keep-alive connection is kept between requests."""
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    """Largest request head (request line and headers); larger is 431 and close."""
    max_connections: int = Field(default=1000, gt=0)
    """Open connections per server process; one more is answered 503 and closed."""

    # -- metrics (server/metrics.py) ---------------------------------------------------
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve ``/metrics`` on this port (same interface as ``serve --host``) instead of
    on the main port, which then answers 404 there. Unset: on the main port."""
    metrics_per_client: int = Field(default=0, ge=0, le=10_000)
    """Count issued tokens per client id for at most this many client ids per process
    (the first seen); the others count under ``other``. 0 (default): off."""
    secret_rotation_overlap: int = Field(default=86400, ge=0, le=366 * 24 * 3600)
    """Seconds a rotated-out client secret keeps working beside the new one (0: none)."""

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, value: str | None) -> str | None:
        """Refuse at start-up a URL no engine could use, saying what a good one is."""
        if value is not None:
            check_database_url(value)
        return value

    @field_validator("pepper")
    @classmethod
    def _strong_pepper(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            pepper_bytes(value.get_secret_value())  # raises PepperError, a ValueError
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(REDIS_SCHEMES):
            raise ValueError(f"a Redis URL starts with {', '.join(REDIS_SCHEMES)}")
        return value

    @property
    def resolved_database_url(self) -> str:
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'keyturn.db'}"
        return normalize_database_url(url)

    @property
    def resolved_sign_processes(self) -> int:
        if self.sign_processes is not None:
            return self.sign_processes
        return default_sign_processes(workers=1)

    @property
    def audience(self) -> str:
        return self.default_audience or self.issuer

    @property
    def issuer_url(self) -> str:
        return self.issuer.rstrip("/")

    # -- behind a load balancer (cli.py serve, server/lifecycle.py) --------------------
    forwarded_allow_ips: str = ""
    """Proxies trusted to name the client in ``X-Forwarded-For``: a comma list of
    addresses or networks (``10.0.0.5,10.1.0.0/16``), or ``*``. Empty (the default)
    trusts none: the client is the connection's peer. Lockouts and throttles count
    per source address, so behind a balancer name its address here, or every client
    shares the balancer's. ``*`` only when clients cannot reach the port directly."""
    shutdown_drain: float = Field(default=0.0, ge=0, le=300)
    """On SIGTERM, seconds to go on serving while ``/readyz`` answers 503, so a
    balancer's health checks take the process out before it stops listening.
    0 on a laptop; behind a balancer more than its ``fall`` x ``inter`` (e.g. 3)."""
    shutdown_timeout: int = Field(default=30, gt=0)
    """After the drain, seconds in-flight requests get to finish before they are cancelled."""

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _forwarded_networks(cls, value: str) -> str:
        """Refuse at start-up what is not an address, a network or ``*``."""
        import ipaddress

        for item in (part.strip() for part in value.split(",")):
            if item and item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{item!r} is not an IP address or network; use e.g. 10.0.0.5,10.1.0.0/16"
                    ) from None
        return value

    @property
    def trusted_proxies(self) -> list[str]:
        """`forwarded_allow_ips` as uvicorn takes it; empty when forwarding is off."""
        return [part.strip() for part in self.forwarded_allow_ips.split(",") if part.strip()]

    # -- logs (server/logging_config.py) -----------------------------------------------
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line (ts, level, logger, message, request_id)."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    """Level of Keyturn's and uvicorn's loggers; ``serve --log-level`` overrides it."""

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    # -- readiness (server/endpoints/health.py) ------------------------------------------
    ready_requires_redis: bool = True
    """Whether ``/readyz`` is 503 while Redis is unreachable. Keyturn keeps serving
    without Redis (per-process limits, revocations published once it is back), so a
    fleet whose balancer should not drop every backend at once sets it to false."""
