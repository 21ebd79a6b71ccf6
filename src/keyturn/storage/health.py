"""Is an outside service (the database, Redis) failing, and what kind of failure is it?

A fault outside Keyturn must answer ``503`` with ``Retry-After``, be logged once
when it starts and once when it ends (not once per request), and heal by itself.
This module holds the two pieces every layer needs for that: `database_fault`,
which tells an outage (unreachable, full, timed out) from a bug in Keyturn by
the exception and its causes, and `ServiceHealth`, the up/down state of one
service with its transitions logged.

Written here because no library classifies DB-API, SQLAlchemy and asyncpg
failures into "retry later" and "bug"; the rules follow the drivers' own
error codes (SQLite's primary result codes, PostgreSQL's SQLSTATE classes 08,
53 and 57).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

UNREACHABLE = "unreachable"
"""The service did not answer: refused, reset, timed out, shut down, locked."""
FULL = "full"
"""The service answers but cannot write: a full disk. Reads succeeding prove nothing."""

_SQLITE_UNAVAILABLE = {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PROTOCOL,
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_READONLY,
}
_SQLSTATE_FULL = {"53100", "53200"}  # disk_full, out_of_memory
_SQLSTATE_CLASSES = ("08", "53", "57")  # connection exception, resources, operator intervention


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it wraps (SQLAlchemy's ``orig``, ``__cause__``, ``__context__``,
    the members of an exception group), each once, at most 16."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 16:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nested in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(nested, BaseException):
                todo.append(nested)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)


def lock_held_elsewhere(exc: sqlite3.OperationalError) -> bool:
    """SQLite refused because another connection holds a lock. The primary code
    (the low byte): SQLite may report an extended one, such as
    SQLITE_BUSY_RECOVERY."""
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def database_fault(exc: BaseException) -> str | None:
    """`UNREACHABLE` or `FULL` when ``exc`` is the database failing, else None (a bug)."""
    for cause in causes(exc):
        kind = _one_fault(cause)
        if kind is not None:
            return kind
    return None


def _one_fault(exc: BaseException) -> str | None:
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return FULL if "disk is full" in str(exc) else None
        primary = code & 0xFF
        if primary == sqlite3.SQLITE_FULL:
            return FULL
        return UNREACHABLE if primary in _SQLITE_UNAVAILABLE else None
    module = type(exc).__module__
    if module.startswith("asyncpg"):
        return _asyncpg_fault(exc)
    if module.startswith("sqlalchemy"):
        name = type(exc).__name__
        if name == "TimeoutError":  # the pool had no connection to give in time
            return UNREACHABLE
        if getattr(exc, "connection_invalidated", False):
            return UNREACHABLE
        return None
    if isinstance(exc, OSError):
        return FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else UNREACHABLE
    return None


def _asyncpg_fault(exc: BaseException) -> str | None:
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate in _SQLSTATE_FULL:
            return FULL
        if sqlstate.startswith(_SQLSTATE_CLASSES):
            return UNREACHABLE
        return None
    # Client-side: a closed or lost connection (InterfaceError, ConnectionDoesNotExistError).
    name = type(exc).__name__
    if "Connection" in name or name in ("InterfaceError", "InternalClientError"):
        return UNREACHABLE
    return None


def describe(exc: BaseException) -> str:
    """One line about the deepest cause, for the log: never a traceback, never a value."""
    deepest = exc
    for cause in causes(exc):
        deepest = cause
    text = str(deepest).strip().splitlines()[0] if str(deepest).strip() else ""
    return f"{type(deepest).__name__}: {text[:200]}" if text else type(deepest).__name__


class ServiceHealth:
    """The up/down state of one outside service, logged once per change of state.

    ``failed`` is called where an operation met a fault, ``succeeded`` where
    one worked. After a `FULL` fault only a successful *write* proves the
    service healthy again: reads keep working on a full disk. Only a success
    ``SETTLE`` seconds after the last failure counts (see there).
    """

    SETTLE = 0.5
    """Seconds after the last failure in which a success does not count: a request
    that was in flight when the service went down may still finish, and must
    not announce a recovery that has not happened."""

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        retry_after: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.retry_after = retry_after
        self._log = logger
        self._clock = clock
        self._down: str | None = None
        self._last_failure = 0.0
        self._mutex = threading.Lock()  # storage callbacks may come from a writer thread
        self.transitions = 0

    @property
    def down(self) -> str | None:
        """The kind of the current fault, or None while the service is healthy."""
        return self._down

    def failed(self, exc: BaseException, kind: str = UNREACHABLE) -> None:
        with self._mutex:
            self._last_failure = self._clock()
            was = self._down
            if was is not None:  # already down: a full disk stays the stricter state
                self._down = FULL if FULL in (was, kind) else UNREACHABLE
                return
            self._down = kind
            self.transitions += 1
        self._log.warning(
            "%s unavailable (%s): %s; answering 503 until it recovers",
            self.name,
            kind,
            describe(exc),
        )

    def succeeded(self, *, write: bool) -> None:
        if self._down is None:  # the common case: no lock, no work
            return
        with self._mutex:
            if self._down is None or (self._down == FULL and not write):
                return
            if self._clock() - self._last_failure < self.SETTLE:
                return
            self._down = None
            self.transitions += 1
        self._log.warning("%s available again", self.name)


_SQLITE_CONSTRAINT_FOREIGNKEY = 787
_SQLSTATE_FOREIGN_KEY = "23503"


def missing_reference(exc: BaseException) -> bool:
    """Whether ``exc`` is a foreign-key violation: a row refers to one deleted meanwhile.

    A client deleted by another process while this one still had it cached
    shows up here, when its new token is recorded.
    """
    for cause in causes(exc):
        if isinstance(cause, sqlite3.IntegrityError):
            if getattr(cause, "sqlite_errorcode", None) == _SQLITE_CONSTRAINT_FOREIGNKEY:
                return True
        elif getattr(cause, "sqlstate", None) == _SQLSTATE_FOREIGN_KEY:
            return True
    return False
