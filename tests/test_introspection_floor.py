"""benchmarks/introspection_floor.py's exact minimum answers as Keyturn does.

The benchmark compares Keyturn with a hand-written introspection; that is only
fair if both give the same answers. Here the minimum's logic runs in-process on
the SQLite file of a real Keyturn app (the server tests' harness), and each of
its answers must equal Keyturn's: active (first seen, then remembered), revoked,
expired, unknown, forged, another client's token, a wrong secret. No timing.
"""

from __future__ import annotations

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
from tests.conftest import TEST_PEPPER, load_script
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
