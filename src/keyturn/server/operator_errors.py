"""Turn failures caused by configuration or environment into one or two plain lines.

An operator who sets a bad ``KEYTURN_*`` value, points Keyturn at a database
that is down, or gives it a data directory it cannot write, needs the setting
and the fix, not hundreds of lines of traceback. `explain` is the one place
that recognises such failures (anywhere in an exception's cause chain); it
returns None for anything else, because anything else is a bug and its
traceback is what a bug report needs.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from keyturn.storage.health import causes

if TYPE_CHECKING:
    from keyturn.server.settings import Settings

DATA_DIR = "KEYTURN_DATA_DIR / --data-dir"
DATABASE_URL = "KEYTURN_DATABASE_URL / --database-url"
REDIS_URL = "KEYTURN_REDIS_URL"

# Options that stand for a setting on the command line.
CLI_OPTIONS = {"data_dir": "--data-dir", "database_url": "--database-url"}
# Settings whose value must never be echoed (a URL can hold a password).
SECRET_SETTINGS = {"pepper", "database_url", "redis_url"}
# Optional drivers: the import name, the setting that needs it, the extra to install.
DRIVERS = {
    "asyncpg": (DATABASE_URL, 'pip install "keyturn[postgres]"'),
    "aiosqlite": (DATABASE_URL, 'pip install "keyturn[server]"'),
    "redis": (REDIS_URL, 'pip install "keyturn[redis]"'),
}


class OperatorError(Exception):
    """A failure the operator fixes in configuration or environment (exit status 2)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"error: {self.problem}\nfix: {self.fix}"


def setting_name(field: str) -> str:
    """``KEYTURN_X`` for a settings field, with its command-line option where it has one."""
    name = "KEYTURN_" + field.upper()
    option = CLI_OPTIONS.get(field)
    return f"{name} / {option}" if option else name


def explain(exc: BaseException, settings: Settings | None = None) -> OperatorError | None:
    """The operator's message for ``exc``, or None when it is not an operator error."""
    for link in causes(exc):
        for rule in _RULES:
            found = rule(link, settings)
            if found is not None:
                return found
    return None


def _from_module(exc: BaseException, prefix: str) -> bool:
    return type(exc).__module__.split(".")[0] == prefix


def database_where(settings: Settings | None) -> str:
    """The database URL without its password, to say which server was tried."""
    if settings is None:
        return "the database"
    from sqlalchemy.engine import make_url

    try:
        return make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    except Exception:
        return "the database"


def _path_setting(path: str, settings: Settings | None) -> str:
    """Which setting named ``path``: the data directory or the database URL."""
    if settings is None:
        return f"{DATA_DIR} or {DATABASE_URL}"
    target = Path(path).absolute()
    data_dir = settings.data_dir.absolute()
    if target == data_dir or data_dir in target.parents:
        return DATA_DIR
    if settings.database_url is not None:
        return DATABASE_URL
    return DATA_DIR


# -- the rules, tried in order on every link of the chain ---------------------------
def _operator_error(exc: BaseException, _: Settings | None) -> OperatorError | None:
    return exc if isinstance(exc, OperatorError) else None


def _invalid_settings(exc: BaseException, _: Settings | None) -> OperatorError | None:
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError) or exc.title != "Settings":
        return None
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    shown = ""
    if field not in SECRET_SETTINGS and "input" in first:
        shown = f" (got {first['input']!r})"
    more = f"; {len(errors) - 1} more setting(s) are invalid too" if len(errors) > 1 else ""
    name = setting_name(field)
    cause = first.get("ctx", {}).get("error")
    fix = getattr(cause, "fix", None) or f"set {name} to a valid value, or unset it"
    if not message.startswith("KEYTURN_"):
        message = f"{name} is invalid: {message}"
    return OperatorError(f"{message}{shown}{more}", fix)


def _missing_driver(exc: BaseException, _: Settings | None) -> OperatorError | None:
    if not isinstance(exc, ImportError) or not exc.name:
        return None
    driver = DRIVERS.get(exc.name.split(".")[0])
    if driver is None:
        return None
    setting, install = driver
    return OperatorError(
        f"{setting} needs the {exc.name.split('.')[0]} driver, which is not installed",
        f"{install}, or change {setting}",
    )


def _bad_database_url(exc: BaseException, _: Settings | None) -> OperatorError | None:
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if isinstance(exc, NoSuchModuleError):
        problem = f"{DATABASE_URL} names a database this Keyturn cannot use"
    elif isinstance(exc, ArgumentError):
        problem = f"{DATABASE_URL} is not a database URL"
    else:
        return None
    return OperatorError(problem, "use postgresql://USER@HOST/DB or sqlite:////ABSOLUTE/PATH.db")


def _postgres_refused(exc: BaseException, settings: Settings | None) -> OperatorError | None:
    """A server-side refusal at connect time: no such database, role or password."""
    state = getattr(exc, "sqlstate", None)
    if not _from_module(exc, "asyncpg") or not isinstance(state, str):
        return None
    if state == "3D000":
        fix = f"create the database (createdb), or change {DATABASE_URL}"
    elif state.startswith("28"):
        fix = f"fix the user or password in {DATABASE_URL}, or PostgreSQL's pg_hba.conf"
    elif state in ("53300", "57P03"):
        fix = "wait for PostgreSQL to accept connections, or raise its max_connections"
    else:
        return None
    return OperatorError(f"PostgreSQL at {database_where(settings)} refused: {exc}", fix)


def _redis_unreachable(exc: BaseException, _: Settings | None) -> OperatorError | None:
    if not _from_module(exc, "redis") or type(exc).__name__ not in (
        "ConnectionError",
        "TimeoutError",
    ):
        return None
    return OperatorError(f"cannot reach Redis: {exc}", f"start Redis, or fix or unset {REDIS_URL}")


def _unreachable(exc: BaseException, settings: Settings | None) -> OperatorError | None:
    """No answer from the database (or Redis): refused, unknown host, timed out."""
    if isinstance(exc, socket.gaierror):
        why = "its host name does not resolve"
    elif isinstance(exc, ConnectionRefusedError):
        why = "nothing listens there (connection refused)"
    elif isinstance(exc, TimeoutError):
        why = "it did not answer in time"
    elif isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        why = "its network is unreachable"
    else:
        return None
    if settings is not None and settings.resolved_database_url.startswith("sqlite"):
        return None  # not a network database: whatever this is, it is not this
    return OperatorError(
        f"cannot connect to {database_where(settings)}: {why}",
        f"start the database server, or point {DATABASE_URL} at one that runs",
    )


_PATH_FIXES = {
    errno.EEXIST: ("is a file, not a directory", "choose a directory"),
    errno.ENOTDIR: ("is not under a directory", "choose a path whose parents are directories"),
    errno.ENOENT: ("does not exist", "create its directory first, or choose another path"),
    errno.EACCES: ("is not writable", "choose a writable directory, or fix its permissions"),
    errno.EPERM: ("is not writable", "choose a writable directory, or fix its permissions"),
    errno.EROFS: ("is on a read-only file system", "choose a writable directory"),
    errno.ENOSPC: ("is on a full disk", "free some space, or choose another directory"),
    errno.EISDIR: ("is a directory, not a file", "choose a file path"),
}


def _path_problem(exc: BaseException, settings: Settings | None) -> OperatorError | None:
    if not isinstance(exc, OSError) or exc.filename is None or exc.errno not in _PATH_FIXES:
        return None
    what, fix = _PATH_FIXES[exc.errno]
    setting = _path_setting(str(exc.filename), settings)
    return OperatorError(f"{exc.filename} {what} ({setting})", f"{fix}, and set {setting}")


def _sqlite_cannot_open(exc: BaseException, settings: Settings | None) -> OperatorError | None:
    """SQLite's own refusals, which carry no path: name the file the settings give."""
    import sqlite3

    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    text = str(exc)
    path = settings.resolved_database_url.partition(":///")[2] if settings else "the database"
    setting = _path_setting(path, settings) if settings else DATABASE_URL
    if "unable to open database file" in text:
        problem, fix = f"cannot open the SQLite file {path}", "choose a writable directory"
    elif "readonly database" in text:
        problem, fix = f"the SQLite file {path} is read-only", "make it writable"
    elif "file is not a database" in text:
        problem, fix = f"{path} is not a SQLite database", "choose another file"
    elif "disk is full" in text or "disk I/O error" in text:
        problem, fix = f"cannot write the SQLite file {path} ({text})", "free some disk space"
    else:
        return None
    return OperatorError(f"{problem} ({setting})", f"{fix}, and set {setting}")


def _schema_too_new(exc: BaseException, _: Settings | None) -> OperatorError | None:
    if type(exc).__name__ != "CommandError" or not _from_module(exc, "alembic"):
        return None
    if "Can't locate revision" not in str(exc):
        return None
    return OperatorError(
        "the database was migrated by a newer Keyturn than this one",
        f"upgrade keyturn, or change {DATABASE_URL}",
    )


def _pepper(exc: BaseException, _: Settings | None) -> OperatorError | None:
    from keyturn.server.secrets import PepperError

    if not isinstance(exc, PepperError):
        return None
    return OperatorError(str(exc), exc.fix)


def _wrong_pepper(exc: BaseException, settings: Settings | None) -> OperatorError | None:
    """The database's signing keys were encrypted under another pepper."""
    from keyturn.keys.jwt import KeyDecryptionError

    if not isinstance(exc, KeyDecryptionError):
        return None
    file = f"{settings.data_dir / 'pepper'}" if settings is not None else "the data directory's"
    return OperatorError(
        f"the signing keys in {database_where(settings)} do not decrypt with this pepper",
        f"use the pepper this database was made with: set KEYTURN_PEPPER to it, or unset "
        f"KEYTURN_PEPPER to use {file} file (client secrets and token hashes need it too)",
    )


_RULES: tuple[Callable[[BaseException, Settings | None], OperatorError | None], ...] = (
    _operator_error,
    _invalid_settings,
    _pepper,
    _wrong_pepper,
    _missing_driver,
    _bad_database_url,
    _postgres_refused,
    _schema_too_new,
    _sqlite_cannot_open,
    _path_problem,
    _redis_unreachable,
    _unreachable,
)
