"""Migrations and the settings that pick a database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError

from keyturn.server.secrets import Hasher, load_or_create_pepper, pepper_from_settings
from keyturn.server.settings import Settings, normalize_database_url
from keyturn.storage import database
from keyturn.storage.schema import LOOKED_UP_BY_HASH

pytestmark = pytest.mark.anyio


async def test_upgrade_is_idempotent_and_sqlite_uses_wal(tmp_path: Path) -> None:
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    try:
        await database.upgrade(engine)
        await database.upgrade(engine)
        assert await database.current_revision(engine) == "0010"
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            tables = {
                r[0]
                for r in await conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type='table'")
                )
            }
        assert mode == "wal"
        assert {"clients", "tokens", "signing_keys"} <= tables
    finally:
        await engine.dispose()


async def test_postgres_migrates(postgres_database_url: str) -> None:
    engine = database.create_engine(normalize_database_url(postgres_database_url))
    try:
        await database.upgrade(engine)
        assert await database.current_revision(engine) == "0010"
    finally:
        await engine.dispose()


def test_database_url_defaults_and_normalization(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_database_url("sqlite:////x.db") == "sqlite+aiosqlite:////x.db"


def test_pepper_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_pepper(tmp_path)
    assert len(first) == 32
    assert (tmp_path / "pepper").stat().st_mode & 0o777 == 0o600
    assert load_or_create_pepper(tmp_path) == first
    assert pepper_from_settings("ab" * 32, tmp_path) == bytes.fromhex("ab" * 32)


def test_hasher_is_keyed_and_constant_time_shaped() -> None:
    a, b = Hasher(b"a" * 32), Hasher(b"b" * 32)
    assert a.hash("s") != b.hash("s")
    assert a.verify("s", a.hash("s"))
    assert not a.verify("s", b.hash("s"))
    assert not a.verify("s", None)
    # The short form (access-token records) is checked as such, by its length.
    assert len(a.short_hash("s")) == 22
    assert a.verify("s", a.short_hash("s"))
    assert not a.verify("s", b.short_hash("s"))
    assert not a.verify("t", a.short_hash("s"))
    assert not a.verify("s", a.hash("s")[:22])  # a cut hex hash is not a short hash
    assert "a" * 32 not in repr(a)
    with pytest.raises(ValueError, match="32 bytes"):
        Hasher(b"short")


def test_hasher_is_hmac_sha256_of_each_value_alone() -> None:
    """Stored hashes must not change: each call is HMAC-SHA-256(pepper, value), with
    nothing carried over from an earlier call (the keyed HMAC is copied, not fed)."""
    pepper = bytes(range(32))
    hasher = Hasher(pepper)
    for value in ("", "s", "a" * 1000, "caf\u00e9", "s"):
        digest = hmac.new(pepper, value.encode(), hashlib.sha256).digest()
        assert hasher.hash(value) == digest.hex()
        assert hasher.short_hash(value) == base64.urlsafe_b64encode(digest[:16]).decode()[:22]
    expected = hmac.new(pepper, b"label\x00value", hashlib.sha256).digest()
    assert hasher.derive_key("label", "value") == expected
    assert hasher.derive_key("label", "value") == expected


def test_hasher_without_openssls_hmac_hashes_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ``hmac`` hashes in Python (no OpenSSL HMAC to copy), the same digests."""
    pepper = bytes(range(32))

    def python_hmac(key: bytes, digestmod: Any) -> hmac.HMAC:
        made = hmac.HMAC(key, digestmod=lambda data=b"": hashlib.sha256(data))
        assert made._hmac is None  # type: ignore[attr-defined]  # the Python path
        return made

    monkeypatch.setattr(hmac, "new", python_hmac)
    hasher = Hasher(pepper)
    for value in ("", "s", "caf\u00e9", "s"):
        expected = hmac.digest(pepper, value.encode(), "sha256").hex()
        assert hasher.hash(value) == expected
    assert hasher.derive_key("l", "v") == hmac.digest(pepper, b"l\x00v", "sha256")


async def test_downgrade_and_upgrade_round_trip(tmp_path: Path) -> None:
    engine = database.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    try:
        await database.upgrade(engine)
        await database.downgrade(engine, "base")
        assert await database.current_revision(engine) is None
        await database.upgrade(engine)
        assert await database.current_revision(engine) == "0010"
    finally:
        await engine.dispose()


def test_generated_identifiers_never_look_like_command_line_options() -> None:
    from keyturn.server.secrets import generate_client_id, generate_token_id

    ids = [generate_client_id() for _ in range(3000)] + [generate_token_id() for _ in range(3000)]
    assert not any(i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)


def test_token_ids_are_unique_and_follow_issuance_time() -> None:
    import re
    import time

    from keyturn.server.secrets import generate_token_id

    ids = [generate_token_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-v]{26}", i) for i in ids)
    earlier = generate_token_id()
    time.sleep(0.002)
    later = generate_token_id()
    assert earlier < later  # the time prefix sorts first, as text and as bytes
    assert earlier[:9] <= later[:9]


def test_token_id_encoding_is_the_standard_base32hex() -> None:
    import base64

    from keyturn.server.secrets import base32hex_lower

    edges = [bytes(16), b"\xff" * 16, b"\x80" + bytes(15), bytes(15) + b"\x01"]
    for data in edges + [os.urandom(16) for _ in range(20_000)]:
        expected = base64.b32hexencode(data).decode("ascii").rstrip("=").lower()
        assert base32hex_lower(data) == expected, data.hex()
    for wrong in (bytes(15), bytes(17)):
        with pytest.raises(ValueError, match="16 bytes"):
            base32hex_lower(wrong)


def test_token_id_random_bytes_are_sliced_without_reuse() -> None:
    from keyturn.server.secrets import RandomBytes

    pool = RandomBytes(size=64)
    taken = [pool.take(10) for _ in range(50)]  # 6 slices a buffer, then a fresh read
    assert all(len(t) == 10 for t in taken)
    assert len(set(taken)) == len(taken)
    assert len(pool.take(100)) == 100  # more than a buffer: read at its own size


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_token_id_bytes() -> None:
    from keyturn.server.secrets import RandomBytes

    pool = RandomBytes()
    pool.take(10)  # the parent's buffer holds bytes it has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next slice, to the parent
        try:
            os.write(write, pool.take(10))
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 10)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 10
    assert child != pool.take(10)


async def test_family_and_revocation_indexes_are_partial_and_used(own_database_url: str) -> None:
    """Inserts skip the two mostly-NULL indexes; lookups by family and purges still use them."""
    engine = database.create_engine(normalize_database_url(own_database_url))
    try:
        await database.upgrade(engine)
        async with engine.connect() as conn:
            where = await conn.run_sync(_index_sql)
            for column in ("family_id", "revoked_at"):
                index = where[f"ix_tokens_{column}"]
                assert re.search(rf"_where=\(?{column} IS NOT NULL\)?$", index), index
            if engine.dialect.name == "sqlite":
                explain = "EXPLAIN QUERY PLAN "
            else:
                await conn.execute(text("SET enable_seqscan = off"))  # an empty table
                explain = "EXPLAIN "
            plans = []
            for query in (
                "SELECT token_id FROM tokens WHERE family_id = 'f'",
                "SELECT token_id FROM tokens WHERE revoked_at < 5",
                f"SELECT token_id FROM tokens WHERE token_hash = 'h' AND {LOOKED_UP_BY_HASH}",
            ):
                rows = await conn.execute(text(explain + query))
                plans.append(" ".join(str(r[-1]) for r in rows))
        assert "ix_tokens_family_id" in plans[0]
        assert "ix_tokens_revoked_at" in plans[1]
        assert "ix_tokens_token_hash" in plans[2]
    finally:
        await engine.dispose()


INSERT_CLIENT_C = text(
    "INSERT INTO clients (client_id, name, is_public, grant_types, scopes, audiences,"
    " redirect_uris, auth_methods, can_introspect, allow_plain_pkce, created_at, updated_at)"
    " VALUES ('c', '', false, '[]', '[]', '[]', '[]', '[]', false, false, 1, 1)"
)
"""Client ``c``, for migration tests that add its tokens with plain SQL."""


def _index_sql(connection: Connection) -> dict[str, str]:
    inspector = inspect(connection)
    found = {}
    for ix in inspector.get_indexes("tokens"):
        if ix.get("duplicates_constraint"):
            continue  # PostgreSQL's own index behind a UNIQUE constraint
        where = ix.get("dialect_options", {})
        found[str(ix["name"])] = " ".join(f"{k}={v}" for k, v in sorted(where.items()))
    for uc in inspector.get_unique_constraints("tokens"):
        found[f"unique {uc['column_names']}"] = ""
    return found


async def test_0007_keeps_the_data_and_indexes_only_opaque_tokens_by_hash(
    own_database_url: str,
) -> None:
    """The hash index moves from every token to refresh and legacy tokens, and back."""
    engine = database.create_engine(normalize_database_url(own_database_url))
    rows = [
        {"token_id": f"t{i}", "token_hash": f"h{i}", "kind": kind}
        for i, kind in enumerate(["access_token", "access_token", "refresh_token", "legacy"])
    ]
    insert = text(
        "INSERT INTO tokens (token_id, token_hash, kind, client_id, scope, audience, grant_type,"
        " issued_at, expires_at, family_id) VALUES (:token_id, :token_hash, :kind,"
        " 'c', '', '[]', 'x', 1, 2, :token_id)"
    )
    try:
        await database.upgrade(engine, "0006")
        async with engine.begin() as conn:
            await conn.execute(INSERT_CLIENT_C)
            await conn.execute(insert, rows)
            before = await conn.run_sync(_index_sql)
        assert "unique ['token_hash']" in before
        await database.upgrade(engine, "0007")
        async with engine.begin() as conn:
            after = await conn.run_sync(_index_sql)
            kept = (await conn.execute(text("SELECT count(*) FROM tokens"))).scalar_one()
            # Two access tokens may now share a hash (they are found by jti) ...
            await conn.execute(insert, [{**rows[0], "token_id": "t9"}])
        assert kept == 4
        assert "unique ['token_hash']" not in after
        assert re.search(r"kind\W.*<> 'access_token'", after["ix_tokens_token_hash"])
        assert "IS NOT NULL" in after["ix_tokens_family_id"]  # 0006's survive the rebuild
        assert "IS NOT NULL" in after["ix_tokens_revoked_at"]
        assert set(before) - {"unique ['token_hash']"} <= set(after)
        # ... but two opaque tokens may not.
        async with engine.begin() as conn:
            with pytest.raises(IntegrityError):
                await conn.execute(insert, [{**rows[2], "token_id": "t8"}])
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM tokens WHERE token_id = 't9'"))
        await database.downgrade(engine, "0006")
        async with engine.begin() as conn:
            assert await conn.run_sync(_index_sql) == before
            assert (await conn.execute(text("SELECT count(*) FROM tokens"))).scalar_one() == 4
    finally:
        await engine.dispose()


async def test_0010_replaces_the_listing_indexes_and_keeps_the_data(
    own_database_url: str,
) -> None:
    engine = database.create_engine(normalize_database_url(own_database_url))
    try:
        await database.upgrade(engine, "0009")
        async with engine.begin() as conn:
            await conn.execute(INSERT_CLIENT_C)
            await conn.execute(
                text(
                    "INSERT INTO tokens (token_id, token_hash, kind, client_id, subject, scope,"
                    " audience, grant_type, issued_at, expires_at) VALUES (:id, :id,"
                    " 'access_token', 'c', 'u', '', '[]', 'x', :at, 9)"
                ),
                [{"id": f"t{i}", "at": i % 3} for i in range(6)],
            )
            before = await conn.run_sync(_index_sql)
        await database.upgrade(engine)
        async with engine.begin() as conn:
            after = await conn.run_sync(_index_sql)
            kept = (await conn.execute(text("SELECT count(*) FROM tokens"))).scalar_one()
        assert kept == 6
        assert {"ix_tokens_client_subject", "ix_tokens_issued_at_id"} <= set(before)
        assert not {"ix_tokens_client_subject", "ix_tokens_issued_at_id"} & set(after)
        added = {"ix_tokens_client_issued_at", "ix_tokens_subject_client", "ix_tokens_issued_at"}
        assert (
            set(after)
            == set(before) - {"ix_tokens_client_subject", "ix_tokens_issued_at_id"} | added
        )
        await database.downgrade(engine, "0009")
        async with engine.begin() as conn:
            assert await conn.run_sync(_index_sql) == before
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("cores", "workers", "expected"),
    [(2, 1, 2), (2, 2, 1), (2, 4, 1), (64, 1, 4), (64, 32, 2)],
)
def test_default_sign_processes_share_the_cores_and_stay_few(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int, expected: int
) -> None:
    from keyturn.server import settings as settings_module

    monkeypatch.setattr(settings_module, "usable_cores", lambda: cores)
    assert settings_module.default_sign_processes(workers) == expected
    if workers == 1:
        assert Settings().resolved_sign_processes == expected
    assert Settings(sign_processes=0).resolved_sign_processes == 0
