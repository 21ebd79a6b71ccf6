"""benchmarks/issuance_floor.py's exact minimum issues what Keyturn issues.

The benchmark compares Keyturn's token endpoint with a hand-written one; that
is only fair if both do the same work. Here the minimum's logic runs
in-process on the SQLite file of a real Keyturn app (the server tests'
harness): its token must carry Keyturn's answer, header and claims, its row
must be Keyturn's row, Keyturn must introspect it as active, and it must refuse
what Keyturn refuses. Its rows are committed before it answers, several to a
commit, and on the writer thread when the WAL is due a checkpoint. No timing.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from keyturn.server.secrets import pepper_bytes
from tests.conftest import TEST_PEPPER, load_script
from tests.server.conftest import ISSUER, Harness, make_settings, run_harness

FLOOR = Path(__file__).parents[1] / "benchmarks" / "issuance_floor.py"
AUDIENCE = "https://api.floor.test"
VARYING_CLAIMS = ("iat", "exp", "jti")
VARYING_COLUMNS = ("token_id", "token_hash", "issued_at", "expires_at")


@pytest.fixture(scope="module")
def floor() -> ModuleType:
    return load_script(FLOOR, "bench_issuance_floor")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "keyturn.db"


@pytest.fixture
def server(tmp_path: Path, db: Path) -> Iterator[Harness]:
    yield from run_harness(make_settings(tmp_path, f"sqlite+aiosqlite:///{db}"))


@pytest.fixture
def client(server: Harness) -> dict[str, str]:
    cid, secret = server.create_client(audiences=[AUDIENCE], scopes=["read", "write"])
    assert secret is not None
    return {"client_id": cid, "client_secret": secret}


@pytest.fixture
def minimum(floor: ModuleType, server: Harness, client: dict[str, str], db: Path) -> Iterator[Any]:
    lifetime = server.ctx.settings.access_token_lifetime
    logic = floor.ExactIssuance(db, pepper_bytes(TEST_PEPPER), ISSUER, lifetime)
    yield logic
    logic.close()


def form(client: dict[str, str], **fields: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": "read", "resource": AUDIENCE,
            **client, **fields}  # fmt: skip


def both(server: Harness, minimum: Any, fields: dict[str, str]) -> tuple[Any, Any]:
    """(Keyturn's answer, the minimum's) to one token request: status and parsed JSON."""
    r = server.http.post("/oauth/token", data=fields)
    status, raw = asyncio.run(minimum.answer(urllib.parse.urlencode(fields).encode()))
    return (r.status_code, r.json()), (status, orjson.loads(raw))


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def row_of(db: Path, token_id: str) -> dict[str, Any]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM tokens WHERE token_id = ?", (token_id,)).fetchone()
    assert row is not None, token_id
    return dict(row)


def without(values: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in keys}


def test_the_minimum_issues_the_token_keyturn_issues(
    server: Harness, minimum: Any, client: dict[str, str], db: Path
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
    assert without(row_of(db, its["jti"]), VARYING_COLUMNS) == without(
        row_of(db, ours["jti"]), VARYING_COLUMNS
    )
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
    minimum: Any,
    client: dict[str, str],
    db: Path,
    fields: dict[str, str],
    status: int,
    error: str,
) -> None:
    keyturn, mine = both(server, minimum, form(client, **fields))
    assert keyturn[0] == mine[0] == status
    assert keyturn[1]["error"] == mine[1]["error"] == error
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0


def test_tokens_of_one_turn_share_a_commit_made_before_any_answer(
    minimum: Any, client: dict[str, str], db: Path
) -> None:
    body = urllib.parse.urlencode(form(client)).encode()
    statements: list[str] = []
    minimum._inline.set_trace_callback(statements.append)

    async def eight() -> list[tuple[int, bytes]]:
        answers: list[tuple[int, bytes]] = await asyncio.gather(
            *(minimum.answer(body) for _ in range(8))
        )
        return answers

    answers = asyncio.run(eight())
    assert [status for status, _ in answers] == [200] * 8
    assert statements.count("COMMIT") == 1
    ids = [segment(orjson.loads(raw)["access_token"], 1)["jti"] for _, raw in answers]
    with closing(sqlite3.connect(db)) as conn:
        marks = ",".join("?" * len(ids))
        found = conn.execute(f"SELECT count(*) FROM tokens WHERE token_id IN ({marks})", ids)
        assert found.fetchone()[0] == 8


def test_a_commit_due_a_checkpoint_goes_to_the_writer_thread(
    floor: ModuleType, minimum: Any, client: dict[str, str], db: Path
) -> None:
    body = urllib.parse.urlencode(form(client)).encode()
    inline: list[str] = []
    threaded: list[str] = []
    minimum._inline.set_trace_callback(inline.append)
    minimum._threaded.set_trace_callback(threaded.append)
    minimum._pages = floor.CHECKPOINT_EVERY  # the WAL has grown: this commit checkpoints
    status, raw = asyncio.run(minimum.answer(body))
    assert status == 200
    assert "COMMIT" in threaded
    assert "COMMIT" not in inline
    assert minimum._pages == 0
    row_of(db, segment(orjson.loads(raw)["access_token"], 1)["jti"])
    status, _ = asyncio.run(minimum.answer(body))  # and the next is inline again
    assert status == 200
    assert "COMMIT" in inline
