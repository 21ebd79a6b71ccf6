"""How a ``keyturn serve`` process logs: text for people, or one JSON object per line.

`log_config` is the ``logging.config.dictConfig`` dictionary that ``serve``
applies in its own process and hands to uvicorn (``log_config=``), which
applies it again in every worker. All lines go through one handler on the
root logger, so Keyturn's loggers (``keyturn.*``), uvicorn's (``uvicorn.error``,
``uvicorn.access``) and any library's come out in the same format, each with
the request id (`request_id.REQUEST_ID`) when logged inside a request.

JSON lines are made by `JsonFormatter`, a few lines on the standard library and
orjson (already a server dependency): python-json-logger is maintained again
(4.x), but the fields Keyturn needs -- an RFC 3339 UTC time, the request id from
a context variable, the access fields -- would each be a customisation of it.

What is never logged: secrets, tokens, codes, passwords. The log calls name
client ids, subjects and key ids only; access lines drop the query string; and
the levels here keep SQLAlchemy from logging SQL parameters (it does at INFO
when its loggers inherit that level) whatever ``--log-level`` says. uvicorn's
``trace`` level, which logs ASGI messages with their headers (``Authorization``
among them), is not offered.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from keyturn.server.request_id import REQUEST_ID

LogFormat = Literal["text", "json"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
LOG_LEVELS: tuple[LogLevel, ...] = ("critical", "error", "warning", "info", "debug")

QUIET = ("sqlalchemy", "aiosqlite", "asyncpg", "multipart", "python_multipart", "alembic")
"""Libraries held at WARNING: below it they log SQL parameters or request bodies (or,
Alembic, two lines per start; `database.upgrade` says which migrations it runs)."""


def rfc3339(created: float) -> str:
    """``created`` (a ``time.time()``) as RFC 3339 UTC with milliseconds: ``...T12:00:00.123Z``."""
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, pid, request_id, access fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            entry.update(access)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``2025-01-02 03:04:05,678 INFO keyturn.server [request id] message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = REQUEST_ID.get()
        if request_id is None:
            return line
        head, _, message = line.partition(f" {record.name} ")
        return f"{head} {record.name} [{request_id}] {message}"


class StripQuery(logging.Filter):
    """On uvicorn's own access line (if someone enables it): the path without its query.

    ``serve`` turns that line off in favour of `request_id.log_access`; this
    keeps the query out when uvicorn runs Keyturn with this configuration anyway.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            client, method, full_path, version, status = args
            path = str(full_path).partition("?")[0]
            record.args = (client, method, path, version, status)
            record.access = {"method": method, "path": path, "status": status, "client": client}
        return True


def log_config(fmt: LogFormat, level: LogLevel, *, access_log: bool) -> dict[str, Any]:
    """The ``dictConfig`` for a server process (see the module docstring)."""
    name = level.upper()
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    loggers: dict[str, Any] = {
        # Handlers cleared (uvicorn's defaults print their own format): all go to root.
        "uvicorn": {"handlers": [], "level": name, "propagate": True},
        "uvicorn.error": {"handlers": [], "level": name, "propagate": True},
        "uvicorn.access": {
            "handlers": [],
            "level": "INFO",
            "filters": ["strip_query"],
            "propagate": True,
        },
        "keyturn": {"level": name},
        "keyturn.access": {"level": "INFO" if access_log else "WARNING"},
    }
    loggers.update({quiet: {"level": "WARNING"} for quiet in QUIET})
    return {
        "version": 1,
        # Keyturn's module-level loggers exist before this runs; they must keep working.
        "disable_existing_loggers": False,
        "formatters": {"keyturn": {"()": f"{__name__}.{formatter.__name__}"}},
        "filters": {"strip_query": {"()": f"{__name__}.StripQuery"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "keyturn",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": loggers,
        # Other libraries: at most INFO (their DEBUG is noise, and riskier).
        "root": {"handlers": ["stderr"], "level": name if level != "debug" else "INFO"},
    }


def say_for(fmt: LogFormat) -> Callable[[str], None]:
    """How ``serve`` prints its start-up lines: as they are, or as log lines in JSON."""
    if fmt == "text":

        def write(text: str) -> None:
            sys.stderr.write(text)

        return write
    log = logging.getLogger("keyturn.serve")

    def say(text: str) -> None:
        log.info("%s", text.rstrip("\n"))

    return say
