"""benchmarks/issuance_floor.py's exact minimum issues what Keyturn issues.

The benchmark compares Keyturn's token endpoint with a hand-written one; that
is only fair if both do the same work. Here the minimum's logic runs
in-process on the SQLite file of a real Keyturn app (the server tests'
harness), on SQLite and on PostgreSQL: its token must carry Keyturn's answer,
header and claims, its row must be Keyturn's row, Keyturn must introspect it as
active, and it must refuse what Keyturn refuses. Its rows are committed before
it answers, several to a commit: on SQLite those of one turn of the loop (on
the writer thread when the WAL is due a checkpoint), on PostgreSQL those asked
while a write is out. No timing.
"""

from __future__ import annotations

import asyncio
import base64
import re
import sqlite3
import urllib.parse
from collections.abc import Coroutine, Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import orjson
import pytest

from keyturn.server.secrets import pepper_bytes
from tests.conftest import TEST_PEPPER, load_script
from tests.server.conftest import ISSUER, Harness, make_settings, run_harness

FLOOR = Path(__file__).parents[1] / "benchmarks" / "issuance_floor.py"
AUDIENCE = "https://api.floor.test"
VARYING_CLAIMS = ("iat", "exp", "jti")
VARYING_COLUMNS = ("token_id", "token_hash", "issued_at", "expires_at")
R = TypeVar("R")


@pytest.fixture(scope="module")
def floor() -> ModuleType:
    return load_script(FLOOR, "bench_issuance_floor")


class Minimum:
    """The minimum's logic on a loop of its own (asyncpg's connection stays on one)."""

    def __init__(self, make: Coroutine[Any, Any, Any]) -> None:
        self.loop = asyncio.new_event_loop()
        self.logic = self.loop.run_until_complete(make)

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        return self.loop.run_until_complete(coro)

    def answer(self, body: bytes) -> tuple[int, bytes]:
        answer: tuple[int, bytes] = self.run(self.logic.answer(body))
        return answer

    def close(self) -> None:
        self.run(self.logic.close())
        self.loop.close()


@pytest.fixture
def server(tmp_path: Path, own_database_url: str) -> Iterator[Harness]:
    yield from run_harness(make_settings(tmp_path, own_database_url))


@pytest.fixture
def client(server: Harness) -> dict[str, str]:
    cid, secret = server.create_client(audiences=[AUDIENCE], scopes=["read", "write"])
    assert secret is not None
    return {"client_id": cid, "client_secret": secret}


@pytest.fixture
def minimum(
    floor: ModuleType, server: Harness, client: dict[str, str], own_database_url: str
) -> Iterator[Minimum]:
    lifetime = server.ctx.settings.access_token_lifetime
    pepper = pepper_bytes(TEST_PEPPER)
    exact = floor.ExactIssuance

    async def make() -> Any:
        if own_database_url.startswith("sqlite"):
            path = own_database_url.split(":///", 1)[1]
            return exact.on_sqlite(path, pepper, ISSUER, lifetime)
        return await exact.on_postgres(own_database_url, pepper, ISSUER, lifetime)

    logic = Minimum(make())
    yield logic
    logic.close()


def rows_where(database_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of a query (``$1`` placeholders) on the test's database, read anew."""
    if database_url.startswith("sqlite"):
        with closing(sqlite3.connect(database_url.split(":///", 1)[1])) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(re.sub(r"\$\d+", "?", sql), args)]

    async def fetch() -> list[dict[str, Any]]:
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def form(client: dict[str, str], **fields: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": "read", "resource": AUDIENCE,
            **client, **fields}  # fmt: skip


@pytest.fixture
def body(client: dict[str, str]) -> bytes:
    """The benchmark's token request: client_credentials, one scope, one resource."""
    return urllib.parse.urlencode(form(client)).encode()


def both(server: Harness, minimum: Minimum, fields: dict[str, str]) -> tuple[Any, Any]:
    """(Keyturn's answer, the minimum's) to one token request: status and parsed JSON."""
    r = server.http.post("/oauth/token", data=fields)
    status, raw = minimum.answer(urllib.parse.urlencode(fields).encode())
    return (r.status_code, r.json()), (status, orjson.loads(raw))


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def row_of(database_url: str, token_id: str) -> dict[str, Any]:
    rows = rows_where(database_url, "SELECT * FROM tokens WHERE token_id = $1", token_id)
    assert len(rows) == 1, token_id
    return rows[0]


def without(values: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in keys}


def test_the_minimum_issues_the_token_keyturn_issues(
    server: Harness, minimum: Minimum, client: dict[str, str], own_database_url: str
) -> None:
    (status, theirs), (my_status, mine) = both(server, minimum, form(client))
    assert status == my_status == 200
    assert without(mine, ("access_token",)) == without(theirs, ("access_token",))
    assert segment(mine["access_token"], 0) == segment(theirs["access_token"], 0)
    ours, its = segment(theirs["access_token"], 1), segment(mine["access_token"], 1)
    assert set(its) == set(ours)
    assert without(its, VARYING_CLAIMS) == without(ours, VARYING_CLAIMS)
    assert its["jti"] != ours["jti"]

    # The minimum's row is Keyturn's row, committed before it answered.
    db = own_database_url
    assert without(row_of(db, its["jti"]), VARYING_COLUMNS) == without(
        row_of(db, ours["jti"]), VARYING_COLUMNS
    )
    # The same keyed hash, in the same form, each of its own signing input.
    for token, claims in ((mine, its), (theirs, ours)):
        signing_input = token["access_token"].rpartition(".")[0]
        stored = row_of(db, claims["jti"])["token_hash"]
        assert stored == server.ctx.hasher.short_hash(signing_input)
    # Keyturn itself finds the row, checks the hash and the signature, and says active.
    seen = [
        server.http.post("/oauth/introspect", data={"token": t, **client}).json()
        for t in (theirs["access_token"], mine["access_token"])
    ]
    assert seen[1]["active"] is True
    assert seen[1]["jti"] == its["jti"]
    assert without(seen[1], VARYING_CLAIMS) == without(seen[0], VARYING_CLAIMS)


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"grant_type": "urn:example:none"}, 400, "unsupported_grant_type"),
        ({"scope": "admin"}, 400, "invalid_scope"),
        ({"resource": "https://elsewhere.test"}, 400, "invalid_target"),
    ],
)
def test_the_minimum_refuses_what_keyturn_refuses(
    server: Harness,
    minimum: Minimum,
    client: dict[str, str],
    own_database_url: str,
    fields: dict[str, str],
    status: int,
    error: str,
) -> None:
    keyturn, mine = both(server, minimum, form(client, **fields))
    assert keyturn[0] == mine[0] == status
    assert keyturn[1]["error"] == mine[1]["error"] == error
    assert rows_where(own_database_url, "SELECT token_id FROM tokens") == []


ON_SQLITE = pytest.mark.parametrize("own_database_url", ["sqlite"], indirect=True)
ON_POSTGRES = pytest.mark.parametrize("own_database_url", ["postgres"], indirect=True)


@ON_SQLITE
def test_tokens_of_one_turn_share_a_commit_made_before_any_answer(
    minimum: Minimum, body: bytes, own_database_url: str
) -> None:
    statements: list[str] = []
    minimum.logic.rows._inline.set_trace_callback(statements.append)

    async def eight() -> list[tuple[int, bytes]]:
        answers: list[tuple[int, bytes]] = await asyncio.gather(
            *(minimum.logic.answer(body) for _ in range(8))
        )
        return answers

    answers = minimum.run(eight())
    assert [status for status, _ in answers] == [200] * 8
    assert statements.count("COMMIT") == 1
    for _, raw in answers:
        row_of(own_database_url, segment(orjson.loads(raw)["access_token"], 1)["jti"])


@ON_SQLITE
def test_a_commit_due_a_checkpoint_goes_to_the_writer_thread(
    floor: ModuleType, minimum: Minimum, body: bytes, own_database_url: str
) -> None:
    rows = minimum.logic.rows
    inline: list[str] = []
    threaded: list[str] = []
    rows._inline.set_trace_callback(inline.append)
    rows._threaded.set_trace_callback(threaded.append)
    rows._pages = floor.CHECKPOINT_EVERY  # the WAL has grown: this commit checkpoints
    status, raw = minimum.answer(body)
    assert status == 200
    assert "COMMIT" in threaded
    assert "COMMIT" not in inline
    assert rows._pages == 0
    row_of(own_database_url, segment(orjson.loads(raw)["access_token"], 1)["jti"])
    status, _ = minimum.answer(body)  # and the next is inline again
    assert status == 200
    assert "COMMIT" in inline


class HeldWrites:
    """A real asyncpg connection whose first write waits for ``gate``, so a test can
    record rows while a write is out; it counts the writes sent and their rows."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.gate = asyncio.Event()
        self.out = asyncio.Event()  # the first write is out, held at the gate
        self.sent: list[int] = []  # rows per write, in order

    async def close(self) -> None:
        await self.conn.close()

    async def execute(self, sql: str, *args: Any) -> Any:
        self.sent.append(1)
        if len(self.sent) == 1:
            self.out.set()
            await self.gate.wait()
        return await self.conn.execute(sql, *args)

    async def executemany(self, sql: str, rows: list[Any]) -> Any:
        self.sent.append(len(rows))
        return await self.conn.executemany(sql, rows)


@ON_POSTGRES
def test_postgres_rows_asked_while_a_write_is_out_share_the_next(
    minimum: Minimum, body: bytes, own_database_url: str
) -> None:
    rows = minimum.logic.rows
    held = HeldWrites(rows._conn)
    rows._conn = held

    async def scenario() -> list[tuple[int, bytes]]:
        first = asyncio.ensure_future(minimum.logic.answer(body))
        await held.out.wait()
        later = [asyncio.ensure_future(minimum.logic.answer(body)) for _ in range(5)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert held.sent == [1]  # nothing more is sent while one write is out
        assert not any(t.done() for t in [first, *later])  # nobody answered unrecorded
        held.gate.set()
        answers: list[tuple[int, bytes]] = await asyncio.gather(first, *later)
        return answers

    answers = minimum.run(scenario())
    assert [status for status, _ in answers] == [200] * 6
    assert held.sent == [1, 5]  # the five shared the next write
    for _, raw in answers:
        row_of(own_database_url, segment(orjson.loads(raw)["access_token"], 1)["jti"])


@ON_SQLITE
def test_a_commit_that_fails_fails_each_of_its_rows_callers(
    minimum: Minimum, client: dict[str, str], own_database_url: str
) -> None:
    """A row the table refuses (here a duplicate id) fails its batch's callers; none
    waits for ever, and nothing of the batch is left."""
    from keyturn.storage.records import TokenRecord
    from keyturn.storage.token_writer import token_values

    record = TokenRecord(
        token_id="t" * 26, token_hash="h" * 64, kind="access_token",
        client_id=client["client_id"], subject=client["client_id"], scope="", audience=(),
        grant_type="client_credentials", issued_at=1, expires_at=2,
    )  # fmt: skip
    row = token_values(record)

    async def twice() -> list[BaseException | None]:
        outcomes = await asyncio.gather(
            minimum.logic.rows.record(row), minimum.logic.rows.record(row), return_exceptions=True
        )
        return list(outcomes)

    outcomes = minimum.run(asyncio.wait_for(twice(), timeout=10))
    assert all(isinstance(o, sqlite3.Error) for o in outcomes), outcomes
    assert rows_where(own_database_url, "SELECT token_id FROM tokens") == []
