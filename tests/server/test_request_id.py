"""Request ids: taken when sane, generated otherwise, echoed on every answer and logged."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyturn.server.logging_config import JsonFormatter, StripQuery, TextFormatter, log_config
from keyturn.server.request_id import REQUEST_ID, new_request_id, sane_request_id
from tests.server.conftest import Harness, make_settings, run_harness

GENERATED = r"[0-9a-f]{32}"


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[Harness]:
    yield from run_harness(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"))


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (b"abc-123", True),
        (b"x" * 128, True),
        (b"!~{}\"'\\", True),
        (b"x" * 129, False),
        (b"", False),
        (b"has space", False),
        (b"tab\there", False),
        ("caf\u00e9".encode(), False),
        (b"nul\x00", False),
    ],
)
def test_sane_request_ids(given: bytes, kept: bool) -> None:
    assert (sane_request_id(given) is not None) is kept


def test_echoed_on_every_answer_the_token_fast_path_too(sqlite_server: Harness) -> None:
    http = sqlite_server.http
    answers = [
        http.post("/oauth/token", data={"grant_type": "client_credentials"}),  # the fast path
        http.get("/.well-known/jwks.json"),
        http.get("/no/such/page"),
        http.get("/admin/v1/clients"),
    ]
    assert [r.status_code for r in answers] == [401, 200, 404, 401]
    ids = [r.headers["x-request-id"] for r in answers]
    assert all(re.fullmatch(GENERATED, i) for i in ids)
    assert len(set(ids)) == len(ids)

    given = http.get("/.well-known/jwks.json", headers={"X-Request-ID": "lb-7f3a"})
    assert given.headers["x-request-id"] == "lb-7f3a"
    insane = http.post("/oauth/token", headers={"X-Request-ID": "a b"}, data={})
    assert insane.headers["x-request-id"] != "a b"
    assert len(insane.headers.get_list("x-request-id")) == 1


def record(msg: str, *args: object, name: str = "keyturn.server") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_json_lines_carry_the_request_id_and_exceptions() -> None:
    formatter = JsonFormatter()
    token = REQUEST_ID.set("req-1")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            rec = record("failed %s", "x")
            rec.exc_info = sys.exc_info()
        line = formatter.format(rec)
    finally:
        REQUEST_ID.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["request_id"] == "req-1"
    assert entry["message"] == "failed x"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "keyturn.server"
    assert entry["ts"].endswith("Z")
    assert "ValueError: boom" in entry["exc"]
    assert "request_id" not in json.loads(formatter.format(record("outside")))


def test_text_lines_carry_the_request_id() -> None:
    token = REQUEST_ID.set("req-2")
    try:
        line = TextFormatter().format(record("hello"))
    finally:
        REQUEST_ID.reset(token)
    assert line.endswith(" WARNING keyturn.server [req-2] hello")


def test_uvicorns_own_access_line_loses_its_query() -> None:
    rec = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/oauth/authorize?state=s3cret&code_challenge=x", "1.1", 200),
        None,
    )
    assert StripQuery().filter(rec)
    assert rec.getMessage() == '1.2.3.4:5 - "GET /oauth/authorize HTTP/1.1" 200'
    assert "s3cret" not in json.loads(JsonFormatter().format(rec))["path"]


def test_sqlalchemy_is_held_at_warning_even_at_debug() -> None:
    config = log_config("json", "debug", access_log=True)
    assert config["loggers"]["sqlalchemy"]["level"] == "WARNING"
    assert config["loggers"]["keyturn"]["level"] == "DEBUG"
    assert config["loggers"]["keyturn.access"]["level"] == "INFO"
    assert config["root"]["level"] == "INFO"
    assert log_config("text", "info", access_log=False)["loggers"]["keyturn.access"] == {
        "level": "WARNING"
    }


def test_generated_ids_differ_in_a_forked_child() -> None:
    """Ids come from `random`, which must reseed after a fork, or two workers forked
    from one parent would hand out the same ids in the same order."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first ids, then out without pytest's teardown
        os.write(write, " ".join(new_request_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        childs = pipe.read().split()
    os.waitpid(pid, 0)
    parents = [new_request_id() for _ in range(3)]
    assert len(childs) == 3
    assert all(re.fullmatch(GENERATED, i) for i in childs + parents)
    assert not set(childs) & set(parents)
