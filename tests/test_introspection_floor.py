"""benchmarks/introspection_floor.py's exact minimum answers as Keyturn does.

The benchmark compares Keyturn with a hand-written introspection; that is only
fair if both give the same answers. Here the minimum's logic runs in-process on
the SQLite file of a real Keyturn app (the server tests' harness), and each of
its answers must equal Keyturn's: active (first seen, then remembered), revoked,
expired, unknown, forged, another client's token, a wrong secret. No timing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from keyturn.server.secrets import pepper_bytes
from tests.conftest import TEST_PEPPER, _admin, database_name, load_script
from tests.server.conftest import ISSUER, Harness, make_settings, run_harness

FLOOR = Path(__file__).parents[1] / "benchmarks" / "introspection_floor.py"
AUDIENCE = "https://api.floor.test"


@pytest.fixture(scope="module")
def floor() -> ModuleType:
    return load_script(FLOOR, "bench_introspection_floor")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "keyturn.db"


@pytest.fixture
def server(tmp_path: Path, db: Path) -> Iterator[Harness]:
    yield from run_harness(make_settings(tmp_path, f"sqlite+aiosqlite:///{db}"))


@pytest.fixture
def minimum(floor: ModuleType, server: Harness, db: Path) -> Iterator[Any]:
    server.create_client()  # the key and a client exist before the minimum starts
    logic = floor.ExactIntrospection(db, pepper_bytes(TEST_PEPPER), ISSUER)
    yield logic
    logic.close()


def token_for(server: Harness, cid: str, secret: str | None) -> str:
    form = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}
    r = server.http.post("/oauth/token", data={**form, "resource": AUDIENCE})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def both(server: Harness, minimum: Any, **fields: str) -> tuple[Any, Any]:
    """(Keyturn's answer, the minimum's) to one form: status and parsed JSON."""
    r = server.http.post("/oauth/introspect", data=fields)
    status, raw = minimum.answer(urllib.parse.urlencode(fields).encode())
    return (r.status_code, r.json()), (status, orjson.loads(raw))


def same(server: Harness, minimum: Any, **fields: str) -> dict[str, Any]:
    keyturn, mine = both(server, minimum, **fields)
    assert mine == keyturn
    assert keyturn[0] == 200
    body: dict[str, Any] = keyturn[1]
    return body


def test_the_minimum_answers_as_keyturn_does(server: Harness, minimum: Any, db: Path) -> None:
    cid, secret = server.create_client(audiences=[AUDIENCE])
    assert secret is not None
    auth = {"client_id": cid, "client_secret": secret}
    live, revoked, expired = (token_for(server, cid, secret) for _ in range(3))

    first = same(server, minimum, token=live, **auth)  # parsed and checked
    assert first["active"] is True
    assert first["aud"] == AUDIENCE
    assert first["iss"] == ISSUER
    assert same(server, minimum, token=live, **auth) == first  # remembered

    for token in (revoked, expired):  # active first, so the minimum remembers them
        assert same(server, minimum, token=token, **auth)["active"] is True
    r = server.http.post("/oauth/revoke", data={"token": revoked, **auth})
    assert r.status_code == 200
    past, jti = int(time.time()) - 1, minimum._verified[expired][0]
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE tokens SET expires_at = ? WHERE token_id = ?", (past, jti))
    assert same(server, minimum, token=revoked, **auth) == {"active": False}
    assert same(server, minimum, token=expired, **auth) == {"active": False}

    forged = live[:-4] + ("AAAA" if not live.endswith("AAAA") else "BBBB")
    assert same(server, minimum, token=forged, **auth) == {"active": False}
    assert same(server, minimum, token="not-a-token", **auth) == {"active": False}

    other, other_secret = server.create_client()  # registered after the minimum started
    assert other_secret is not None
    foreign = same(server, minimum, token=live, client_id=other, client_secret=other_secret)
    assert foreign["active"] is False
    assert "not_permitted" in foreign

    keyturn, mine = both(server, minimum, token=live, client_id=cid, client_secret=secret + "x")
    assert keyturn[0] == mine[0] == 401
    assert keyturn[1]["error"] == mine[1]["error"] == "invalid_client"


# -- --database postgres: bare app + one read ---------------------------------------
TOKENS_TABLE = (
    "CREATE TABLE tokens (kind text, token_hash text, kid text, token_id text PRIMARY KEY, "
    "client_id text, subject text, scope text, audience text, issued_at bigint, "
    "expires_at bigint, revoked_at bigint)"
)


class Gated:
    """A real connection whose first read waits for ``gate`` before it is sent, so a
    test can ask for rows while a read is on its way."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.gate = asyncio.Event()
        self.sent: list[float] = []  # when each read was sent (loop time)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        if not self.sent:
            self.sent.append(-1.0)
            await self.gate.wait()
        else:
            self.sent.append(asyncio.get_running_loop().time())
        return await self.conn.fetchrow(sql, *args)


@pytest.fixture
def floor_postgres(postgres_database_url: str) -> Iterator[str]:
    """A database of this test's own with a ``tokens`` table holding token ``t1``."""
    import asyncpg

    name = database_name()
    url = f"{postgres_database_url.rsplit('/', 1)[0]}/{name}"

    async def setup() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(TOKENS_TABLE)
            await conn.execute(
                "INSERT INTO tokens VALUES "
                "('access_token', 'h', 'k', 't1', 'c', 's', 'read', '[]', 1, 2, NULL)"
            )
        finally:
            await conn.close()

    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(setup())
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.anyio
async def test_a_lone_request_reads_once_at_once(floor: ModuleType, floor_postgres: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(floor_postgres)
    try:
        reads = floor.FreshReads(conn, "t1")
        sent: list[str] = []
        conn.add_query_logger(lambda q: sent.append(q.query))
        for _ in range(3):
            row = await reads.row()
            assert row["token_id"] == "t1"
        await asyncio.sleep(0.01)  # asyncpg calls its query loggers on a later turn
        assert len([q for q in sent if "FROM tokens" in q]) == 3
    finally:
        await conn.close()


@pytest.mark.anyio
async def test_requests_during_a_read_share_the_next_one_and_see_what_committed_before(
    floor: ModuleType, floor_postgres: str
) -> None:
    """Each waits for a read begun after it asked: not the one already on its way."""
    import asyncpg

    reader, writer = await asyncpg.connect(floor_postgres), await asyncpg.connect(floor_postgres)
    try:
        gated = Gated(reader)
        reads = floor.FreshReads(gated, "t1")
        first = asyncio.create_task(reads.row())
        await asyncio.sleep(0)  # the first read is on its way (held at the gate)
        await writer.execute("UPDATE tokens SET revoked_at = 5 WHERE token_id = 't1'")
        asked = asyncio.get_running_loop().time()
        later = [asyncio.create_task(reads.row()) for _ in range(5)]
        await asyncio.sleep(0)
        assert len(gated.sent) == 1  # they wait; nothing more is sent while one is out
        gated.gate.set()
        rows = await asyncio.gather(first, *later)
        assert len(gated.sent) == 2  # the five shared one read
        assert gated.sent[1] >= asked  # begun after they asked
        assert all(row["revoked_at"] == 5 for row in rows[1:])
        assert await reads.row() is not None  # alone again: reads at once
        assert len(gated.sent) == 3
    finally:
        await reader.close()
        await writer.close()
