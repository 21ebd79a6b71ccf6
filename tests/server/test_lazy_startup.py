"""What a start loads, and what waits for first use: FastAPI with the first admin
request, Alembic only when a migration must run (issue 18, target 7)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.routing import Mount
from starlette.types import Message

import keyturn.server.admin.app as admin_app_module
from keyturn.core.paths import ADMIN_PATH
from keyturn.server.admin import LazyAdminApp
from keyturn.storage import database
from tests.conftest import TEST_PEPPER
from tests.server.conftest import Harness

ADMIN_ONLY = ("fastapi", "keyturn.server.admin.app", "keyturn.server.admin.models")


def loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_importing_the_app_loads_neither_fastapi_nor_alembic() -> None:
    modules = (*ADMIN_ONLY, "alembic")
    assert loaded_after("import keyturn.server.app", modules) == []
    # The probe can see them: the admin app's own module loads FastAPI.
    assert "fastapi" in loaded_after("import keyturn.server.admin.app", modules)


def start_code(data_dir: Path) -> str:
    """A fresh process that builds the server's context (migrations, first key) for
    a SQLite database in ``data_dir``, as ``keyturn serve`` does, and reports its schema."""
    return f"""
import asyncio
from pathlib import Path
from keyturn.server.bootstrap import build_context
from keyturn.server.settings import Settings
from keyturn.storage import database

async def main():
    ctx = await build_context(Settings(data_dir=Path({str(data_dir)!r}), pepper={TEST_PEPPER!r}))
    try:
        print(await database.schema_revisions(ctx.storage.engine))
    finally:
        await ctx.storage.close()

asyncio.run(main())
"""


def test_a_start_on_a_database_at_head_loads_no_alembic(tmp_path: Path) -> None:
    # A new database must be migrated: Alembic is loaded and does it.
    assert loaded_after(start_code(tmp_path), ("alembic",)) == ["alembic"]
    # Every later start finds the schema at head with one SELECT.
    assert loaded_after(start_code(tmp_path), ("alembic",)) == []


@pytest.mark.anyio
async def test_an_older_schema_is_still_migrated(database_url: str) -> None:
    engine = database.create_engine(database_url)
    try:
        await database.upgrade(engine)
        assert await database.schema_revisions(engine) == [database.head_revision()]
        await database.downgrade(engine, "0008")
        assert await database.schema_revisions(engine) == ["0008"]
        await database.upgrade(engine)  # not at head: Alembic runs what is missing
        assert await database.schema_revisions(engine) == [database.head_revision()]
        assert await database.current_revision(engine) == database.head_revision()
    finally:
        await engine.dispose()


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(database.MIGRATIONS_DIR))
    assert database.head_revision() == ScriptDirectory.from_config(config).get_current_head()


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("merge", 'revision = "m1"\ndown_revision = ("0001", "0002")\n'),
        ("branch", 'revision = "b1"\ndown_revision = "0001"\n'),
        ("spelling", 'revision = "s1"\ndown_revision = "0002"\nrevision = "s2"\n'),
        ("unknown_parent", 'revision = "u1"\ndown_revision = "9999"\n'),
    ],
)
def test_scripts_the_reader_cannot_describe_go_to_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str
) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "0001_a.py").write_text('revision = "0001"\ndown_revision = None\n')
    (versions / "0002_b.py").write_text(
        'revision: str = "0002"\ndown_revision: str | None = "0001"\n'
    )
    monkeypatch.setattr(database, "MIGRATIONS_DIR", tmp_path)
    monkeypatch.setattr(database, "_alembic_head", lambda: "alembic's answer")
    database.head_revision.cache_clear()
    try:
        assert database.head_revision() == "0002"  # plain scripts: read directly
        database.head_revision.cache_clear()
        (versions / f"0003_{name}.py").write_text(source)
        assert database.head_revision() == "alembic's answer"
    finally:
        database.head_revision.cache_clear()


# -- the admin app, built on its first request ------------------------------------------
def lazy_admin(server: Harness) -> LazyAdminApp:
    mount = next(r for r in server.http.app.routes if isinstance(r, Mount))  # type: ignore[attr-defined]
    assert mount.path == ADMIN_PATH
    assert isinstance(mount.app, LazyAdminApp)
    return mount.app


def admin_token(server: Harness) -> tuple[str, str]:
    """A new admin client's id, and a token of it."""
    cid, secret = server.create_client(scopes=["keyturn:admin"])
    data = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}
    r = server.http.post("/oauth/token", data=data)
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return cid, token


def test_the_first_admin_request_builds_the_app_and_is_answered(server: Harness) -> None:
    lazy = lazy_admin(server)
    cid, token = admin_token(server)  # a token request builds nothing
    assert not lazy.built
    r = server.http.get("/admin/v1/clients", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert cid in {c["client_id"] for c in r.json()}
    assert lazy.built
    assert server.http.get("/admin/v1/openapi.json").json()["info"]["title"] == "Keyturn admin API"


def test_concurrent_first_admin_requests_share_one_build(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    lazy = lazy_admin(server)
    cid, token = admin_token(server)
    builds: list[object] = []
    real_create = admin_app_module.create_admin_app

    def counted_create(postgres: bool = False) -> Any:
        builds.append(object())
        return real_create(postgres=postgres)

    monkeypatch.setattr(admin_app_module, "create_admin_app", counted_create)
    # Both requests are inside the build step before either may go on, so they
    # really race for it (the barrier breaks, failing the test, if one never comes).
    both_in = threading.Barrier(2, timeout=30)
    real_build = lazy._build

    def build_when_both_wait() -> Any:
        both_in.wait()
        return real_build()

    monkeypatch.setattr(lazy, "_build", build_when_both_wait)
    answers: list[tuple[int, bytes]] = []

    async def one_request() -> None:
        answers.append(await asgi_get(server, "/admin/v1/clients", token))

    async def both() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one_request)
            tasks.start_soon(one_request)

    server.call(both)
    assert len(builds) == 1
    assert [status for status, _ in answers] == [200, 200]
    assert answers[0][1] == answers[1][1]
    assert cid in {c["client_id"] for c in json.loads(answers[0][1])}


async def asgi_get(server: Harness, path: str, token: str) -> tuple[int, bytes]:
    """One GET through the whole app, on the server's own event loop."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    await server.http.app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def test_an_app_on_sqlite_never_imports_asyncpg(tmp_path: Path) -> None:
    code = (
        "from pathlib import Path\n"
        "from keyturn.server.app import create_app\n"
        "from keyturn.server.settings import Settings\n"
        f"create_app(Settings(data_dir=Path({str(tmp_path)!r}), pepper={TEST_PEPPER!r}))"
    )
    assert loaded_after(code, ("asyncpg",)) == []


def test_an_app_on_postgresql_answers_asyncpg_faults_as_faults() -> None:
    from keyturn.server.errors import exception_handlers, fault_handler

    asyncpg = pytest.importorskip("asyncpg", reason="the postgres extra is not installed")
    handlers = exception_handlers(postgres=True)
    assert handlers[asyncpg.PostgresError] is fault_handler
    assert handlers[asyncpg.InterfaceError] is fault_handler
    assert asyncpg.PostgresError not in exception_handlers(postgres=False)
