"""Commands that only read make nothing: no data directory, database, pepper or key.

A mistyped ``KEYTURN_DATA_DIR`` once gave ``keyturn tokens list`` a new empty
database (and a pepper that matches nothing) and the answer "no tokens". Each
case runs the real ``python -m keyturn.cli``, as test_operator_errors does.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from keyturn.storage import database
from tests.cli.test_operator_errors import (
    DATA_DIR,
    DATABASE_URL,
    assert_operator_error,
    keyturn,
)

READ_ONLY = [
    ("clients", "list"),
    ("clients", "show", "some-client"),
    ("keys", "list"),
    ("tokens", "list"),
    ("tokens", "show", "some-token"),
    ("users", "list"),
]
NO_PEPPER: dict[str, str | None] = {"KEYTURN_PEPPER": None}  # else one is made in the data dir


def revision(url: str) -> str | None:
    async def read() -> str | None:
        engine = database.create_engine(url)
        try:
            return await database.current_revision(engine)
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.mark.parametrize("where", ["missing", "empty"])
@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_command_on_no_database_makes_nothing(
    tmp_path: Path, args: tuple[str, ...], where: str
) -> None:
    data_dir = tmp_path / "data"
    if where == "empty":
        data_dir.mkdir()
    done = keyturn(tmp_path, *args, env=NO_PEPPER)
    assert_operator_error(
        done, "KEYTURN_DATA_DIR / --data-dir", str(data_dir / "keyturn.db"), "keyturn db upgrade"
    )
    assert "does not exist" in done.stderr
    if where == "missing":
        assert not data_dir.exists()
    else:
        assert list(data_dir.iterdir()) == []


def test_an_sqlite_url_to_no_file_makes_no_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    done = keyturn(tmp_path, "tokens", "list", env={DATABASE_URL: f"sqlite:///{missing}"})
    assert_operator_error(done, "KEYTURN_DATABASE_URL / --database-url", str(missing))
    assert sorted(tmp_path.iterdir()) == []


def test_a_database_without_its_pepper_gets_no_new_pepper(tmp_path: Path) -> None:
    made = keyturn(tmp_path, "clients", "create", "--name", "a", env=NO_PEPPER)
    assert made.returncode == 0, made.stderr
    pepper = tmp_path / "data" / "pepper"
    pepper.unlink()
    done = keyturn(tmp_path, "clients", "list", env=NO_PEPPER)
    assert_operator_error(done, "KEYTURN_PEPPER", str(pepper), "does not exist")
    assert not pepper.exists()


def test_a_schema_behind_is_not_migrated_by_a_read_only_command(tmp_path: Path) -> None:
    assert keyturn(tmp_path, "db", "upgrade").returncode == 0
    url = f"sqlite:///{tmp_path / 'data' / 'keyturn.db'}"

    async def downgrade() -> None:
        engine = database.create_engine(url)
        try:
            await database.downgrade(engine, "-1")
        finally:
            await engine.dispose()

    asyncio.run(downgrade())
    before = revision(url)
    assert before != database.head_revision()
    done = keyturn(tmp_path, "users", "list")
    assert_operator_error(done, "keyturn db upgrade", f"at {before}, behind", DATA_DIR)
    assert revision(url) == before
    assert keyturn(tmp_path, "db", "upgrade").returncode == 0  # writing still migrates
    assert revision(url) == database.head_revision()


@pytest.mark.parametrize("own_database_url", ["postgres"], indirect=True)
def test_a_fresh_postgres_database_is_not_migrated_and_no_pepper_is_made(
    tmp_path: Path, own_database_url: str
) -> None:
    """On a database of its own: the run's shared one is migrated by other tests."""
    done = keyturn(tmp_path, "keys", "list", env={DATABASE_URL: own_database_url, **NO_PEPPER})
    assert_operator_error(done, "has no Keyturn tables", "keyturn db upgrade", DATABASE_URL)
    assert not (tmp_path / "data").exists()
    assert revision(own_database_url) is None


def test_read_only_commands_read_a_real_data_dir(tmp_path: Path) -> None:
    env: dict[str, str | None] = {**NO_PEPPER, "KEYTURN_ISSUER": "http://127.0.0.1:8000"}
    made = keyturn(tmp_path, "clients", "create", "--name", "a", "--json", env=env)
    assert made.returncode == 0, made.stderr
    client_id = json.loads(made.stdout)["client_id"]
    minted = keyturn(tmp_path, "tokens", "create", "--client-id", client_id, "--json", env=env)
    assert minted.returncode == 0, minted.stderr
    token_id = json.loads(minted.stdout)["token_id"]
    data_dir = tmp_path / "data"
    pepper = (data_dir / "pepper").read_text()
    files = sorted(p.name for p in data_dir.iterdir())

    def read(*args: str) -> Any:
        done = keyturn(tmp_path, *args, "--json", env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert [c["client_id"] for c in read("clients", "list")] == [client_id]
    assert read("clients", "show", client_id)["name"] == "a"
    assert len(read("keys", "list")) == 1
    assert [t["token_id"] for t in read("tokens", "list")["items"]] == [token_id]
    assert read("tokens", "show", token_id)["client_id"] == client_id
    assert read("users", "list") == []
    assert (data_dir / "pepper").read_text() == pepper
    assert sorted(p.name for p in data_dir.iterdir()) == files


def test_keys_list_deletes_no_retired_key(tmp_path: Path) -> None:
    """A superseded key whose tokens have all expired is listed, not deleted: only a
    command that writes (or the server) drops it."""
    assert keyturn(tmp_path, "db", "upgrade").returncode == 0
    made = keyturn(tmp_path, "keys", "rotate", "--delay", "0", "--json")
    assert made.returncode == 0, made.stderr
    db = tmp_path / "data" / "keyturn.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        # Both activated long ago: the first was superseded a day ago, and signed nothing.
        now = int(time.time())
        old, new = (kid for (kid,) in conn.execute("SELECT kid FROM signing_keys ORDER BY rowid"))
        conn.execute("UPDATE signing_keys SET activates_at = ? WHERE kid = ?", (now - 172800, old))
        conn.execute("UPDATE signing_keys SET activates_at = ? WHERE kid = ?", (now - 86400, new))
    listed = keyturn(tmp_path, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {k["kid"]: k["state"] for k in json.loads(listed.stdout)} == {
        old: "retired",
        new: "active",
    }
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM signing_keys").fetchone() == (2,)
    rotated = keyturn(tmp_path, "keys", "rotate", "--json")  # a command that writes prunes
    assert rotated.returncode == 0, rotated.stderr
    with closing(sqlite3.connect(db)) as conn:
        kids = {kid for (kid,) in conn.execute("SELECT kid FROM signing_keys")}
    assert old not in kids
    assert new in kids


def test_a_schema_from_a_newer_keyturn_is_said_as_such(tmp_path: Path) -> None:
    assert keyturn(tmp_path, "db", "upgrade").returncode == 0
    db = tmp_path / "data" / "keyturn.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    done = keyturn(tmp_path, "tokens", "list")
    assert_operator_error(done, "migrated by a newer Keyturn", "upgrade keyturn")
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            "9999_from_the_future",
        )
