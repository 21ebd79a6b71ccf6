"""``/healthz`` and ``/readyz`` on the real app, with each dependency really failing."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from sqlalchemy import event

from keyturn.keys.keyring import KeyRing
from keyturn.server.endpoints.health import Readiness
from keyturn.storage import database
from keyturn.storage.repository import SqlStorage
from tests.conftest import TEST_PEPPER
from tests.e2e.conftest import free_port
from tests.server.conftest import Harness, make_settings, run_harness

REDIS_URL = os.environ.get("KEYTURN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[Harness]:
    yield from run_harness(make_settings(tmp_path, sqlite_url(tmp_path)))


def use_readiness(server: Harness, ctx: Any) -> None:
    """Answer ``/readyz`` from ``ctx`` (a real context with one part broken), unreused."""
    app = server.http.app
    app.state.readiness = Readiness(ctx, ttl=0)  # type: ignore[attr-defined]


def assert_no_configuration(text: str, *secrets: str) -> None:
    for leak in ("127.0.0.1", "sqlite", "postgres", "redis://", "Error", "Traceback", *secrets):
        assert leak not in text


def test_healthz_is_ok_and_not_cached(sqlite_server: Harness) -> None:
    r = sqlite_server.http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["cache-control"] == "no-store"
    assert sqlite_server.http.head("/healthz").status_code == 200


def test_readyz_ready_on_each_database(server: Harness) -> None:
    r = server.http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "signing_key": "ok"},
    }
    assert r.headers["cache-control"] == "no-store"
    assert "retry-after" not in r.headers


def test_probes_answer_only_get_and_head(sqlite_server: Harness) -> None:
    for path in ("/healthz", "/readyz"):
        assert sqlite_server.http.head(path).status_code == 200
        r = sqlite_server.http.post(path)
        assert r.status_code == 405
        assert r.json()["error"] == "invalid_request"


def test_readyz_database_unreachable(sqlite_server: Harness) -> None:
    """A database where nothing listens: 503, named, and nothing about where it is."""
    port = free_port()  # bound a moment ago and released: nothing listens there
    engine = database.create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/keyturn")
    broken = SqlStorage(engine)
    use_readiness(sqlite_server, dataclasses.replace(sqlite_server.ctx, storage=broken))
    try:
        r = sqlite_server.http.get("/readyz")
    finally:
        sqlite_server.call(broken.close)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.headers["cache-control"] == "no-store"
    assert r.json() == {
        "status": "not ready",
        "checks": {"database": "unreachable", "migrations": "unknown", "signing_key": "ok"},
    }
    assert_no_configuration(r.text, str(port))


def test_readyz_database_lost_after_migrations_were_seen(sqlite_server: Harness) -> None:
    """Once at head, only the database's answer is checked; its loss is still seen."""
    ctx = sqlite_server.ctx
    readiness = Readiness(ctx, ttl=0)
    sqlite_server.http.app.state.readiness = readiness  # type: ignore[attr-defined]
    assert sqlite_server.http.get("/readyz").status_code == 200
    engine = database.create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    broken = SqlStorage(engine)
    readiness._ctx = dataclasses.replace(ctx, storage=broken)
    try:
        r = sqlite_server.http.get("/readyz")
    finally:
        sqlite_server.call(broken.close)
    assert r.status_code == 503
    assert r.json()["checks"] == {
        "database": "unreachable",
        "migrations": "ok",
        "signing_key": "ok",
    }


def test_readyz_migrations_behind_then_at_head(sqlite_server: Harness) -> None:
    ctx = sqlite_server.ctx
    use_readiness(sqlite_server, ctx)
    sqlite_server.call(database.downgrade, ctx.storage.engine, "-1")
    r = sqlite_server.http.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["migrations"] == "not at head"
    assert r.json()["checks"]["database"] == "ok"
    assert database.head_revision() not in r.text  # no version information
    sqlite_server.call(database.upgrade, ctx.storage.engine)
    r = sqlite_server.http.get("/readyz")
    assert r.status_code == 200, r.text


def test_readyz_without_an_active_signing_key(tmp_path: Path, sqlite_server: Harness) -> None:
    """A key ring whose only key is still pending (published, not yet signing)."""
    ctx = sqlite_server.ctx
    (tmp_path / "other").mkdir()
    storage = SqlStorage(database.create_engine(sqlite_url(tmp_path / "other")))

    async def pending_only() -> KeyRing:
        await database.upgrade(storage.engine)
        keyring = KeyRing(storage, TEST_PEPPER.encode(), alg="ES256")
        await keyring.rotate(delay=3600)
        return keyring

    keyring = sqlite_server.call(pending_only)
    try:
        use_readiness(sqlite_server, dataclasses.replace(ctx, keyring=keyring))
        r = sqlite_server.http.get("/readyz")
    finally:
        keyring.close()
        sqlite_server.call(storage.close)
    assert r.status_code == 503
    assert r.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "signing_key": "no active key",
    }


def test_readyz_redis_unreachable(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(
        tmp_path, sqlite_url(tmp_path), redis_url=f"redis://127.0.0.1:{port}/0"
    )
    for harness in run_harness(settings):
        r = harness.http.get("/readyz")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json() == {
            "status": "not ready",
            "checks": {
                "database": "ok",
                "migrations": "ok",
                "redis": "unreachable",
                "signing_key": "ok",
            },
        }
        assert_no_configuration(r.text, str(port))


def test_readyz_can_stay_ready_without_redis(tmp_path: Path) -> None:
    """Keyturn serves without Redis; a fleet may not want every backend dropped at once."""
    settings = make_settings(
        tmp_path,
        sqlite_url(tmp_path),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        ready_requires_redis=False,
    )
    for harness in run_harness(settings):
        r = harness.http.get("/readyz")
        assert r.status_code == 200
        assert r.json()["status"] == "ready"
        assert r.json()["checks"]["redis"] == "unreachable"  # still reported


def test_readyz_redis_answers(tmp_path: Path) -> None:
    probe = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        probe.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    finally:
        probe.close()
    settings = make_settings(tmp_path, sqlite_url(tmp_path), redis_url=REDIS_URL)
    for harness in run_harness(settings):
        r = harness.http.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["redis"] == "ok"


def test_readyz_polled_concurrently_checks_once(sqlite_server: Harness) -> None:
    """Many probes within the reuse window cost one database round trip."""
    ctx = sqlite_server.ctx
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement == "SELECT 1" or "alembic_version" in statement:
            statements.append("version" if "alembic_version" in statement else "probe")

    readiness = Readiness(ctx, ttl=60)
    sqlite_server.http.app.state.readiness = readiness  # type: ignore[attr-defined]

    async def burst() -> list[bool]:
        answers: list[bool] = []

        async def one() -> None:
            ready, _ = await readiness.answer()
            answers.append(ready)

        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(one)
        return answers

    event.listen(ctx.storage.engine.sync_engine, "before_cursor_execute", seen)
    try:
        assert sqlite_server.call(burst) == [True] * 20
        assert statements == ["version"]  # before the head is seen, that is the round trip
        readiness._answered_at = float("-inf")  # the reuse window has passed
        assert sqlite_server.call(burst) == [True] * 20
        assert statements == ["version", "probe"]  # at head: the bare probe, once
    finally:
        event.remove(ctx.storage.engine.sync_engine, "before_cursor_execute", seen)


def test_readyz_never_migrated_database(tmp_path: Path, sqlite_server: Harness) -> None:
    """A database that answers but has no schema yet: ready it is not."""
    (tmp_path / "empty").mkdir()
    empty = SqlStorage(database.create_engine(sqlite_url(tmp_path / "empty")))
    use_readiness(sqlite_server, dataclasses.replace(sqlite_server.ctx, storage=empty))
    try:
        r = sqlite_server.http.get("/readyz")
    finally:
        sqlite_server.call(empty.close)
    assert r.status_code == 503
    assert r.json()["checks"] == {
        "database": "ok",
        "migrations": "not at head",
        "signing_key": "ok",
    }
