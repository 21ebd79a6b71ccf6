"""One row mapping for every table (storage/rows.py): each record has exactly its
table's columns, and every record comes back from SQLite and PostgreSQL as it went in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

import pytest
from sqlalchemy import Table

from keyturn.server.settings import normalize_database_url
from keyturn.storage import database, schema
from keyturn.storage.records import (
    TOKEN_KIND_REFRESH,
    AuthorizationCode,
    Client,
    Session,
    SigningKeyRecord,
    TokenRecord,
    User,
)
from keyturn.storage.repository import SqlStorage
from keyturn.storage.rows import to_record, to_row

TABLES: list[tuple[Table, type[Any]]] = [
    (schema.clients, Client),
    (schema.tokens, TokenRecord),
    (schema.signing_keys, SigningKeyRecord),
    (schema.users, User),
    (schema.sessions, Session),
    (schema.authorization_codes, AuthorizationCode),
]

CLIENT = Client(
    client_id="rows-client",
    name="Rows",
    secret_hash="rows-secret-hash",
    is_public=False,
    grant_types=("client_credentials", "refresh_token"),
    scopes=("read", "write"),
    audiences=("https://api.example",),
    redirect_uris=("https://app.example/cb",),
    auth_methods=("client_secret_basic",),
    access_token_lifetime=600,
    rate_limit=5,
    can_introspect=True,
    allow_plain_pkce=True,
    created_at=1_000,
    updated_at=1_001,
    secret_created_at=1_000,
)
USER = User(
    user_id="rows-user", username="rows-ann", password_hash="$argon2id$x", name="Ann", created_at=5
)
TOKEN = TokenRecord(
    token_id="rows-token",
    token_hash="rows-token-hash",
    kind=TOKEN_KIND_REFRESH,
    client_id=CLIENT.client_id,
    subject="ann",
    scope="read write",
    audience=("https://api.example", "https://other.example"),
    grant_type="authorization_code",
    issued_at=2_000,
    expires_at=4_102_444_800,
    family_id="f1",
    parent_id="p1",
    kid="rows-key",
    auth_time=1_999,
)
CODE = AuthorizationCode(
    code_id="rows-code",
    code_hash="rows-code-hash",
    client_id=CLIENT.client_id,
    user_id=USER.user_id,
    redirect_uri="https://app.example/cb",
    scope="read",
    code_challenge="x" * 43,
    code_challenge_method="S256",
    nonce="n",
    auth_time=1_999,
    issued_at=2_000,
    expires_at=4_102_444_800,
    family_id="f2",
)
KEY = SigningKeyRecord(
    kid="rows-key",
    alg="ES256",
    private_key="sealed",
    public_jwk={"kty": "EC", "crv": "P-256", "x": "x", "y": "y"},
    created_at=1,
    activates_at=2,
)
SESSION = Session(
    session_hash="rows-session-hash",
    user_id=USER.user_id,
    auth_time=1_999,
    expires_at=4_102_444_800,
)


@pytest.mark.parametrize(("table", "record_type"), TABLES, ids=lambda v: getattr(v, "name", ""))
def test_every_record_has_exactly_its_tables_columns(table: Table, record_type: type[Any]) -> None:
    assert sorted(f.name for f in fields(record_type)) == sorted(c.name for c in table.columns)


def test_json_columns_take_lists_and_give_back_tuples() -> None:
    row = to_row(CLIENT)
    assert row["scopes"] == ["read", "write"]
    assert row["is_public"] is False
    assert to_record(Client, row) == CLIENT
    assert to_record(SigningKeyRecord, to_row(KEY)).public_jwk == KEY.public_jwk


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[SqlStorage]:
    engine = database.create_engine(normalize_database_url(database_url))
    await database.upgrade(engine)
    store = SqlStorage(engine)
    yield store
    await store.delete_client(CLIENT.client_id)
    await store.delete_user(USER.user_id)
    await store.delete_signing_key(KEY.kid)
    await store.close()


@pytest.mark.anyio
async def test_every_record_comes_back_as_it_went_in(storage: SqlStorage) -> None:
    await storage.create_client(CLIENT)
    await storage.create_user(USER)
    await storage.record_token(TOKEN)
    await storage.create_code(CODE)
    await storage.create_session(SESSION)
    await storage.add_signing_key(KEY)

    client = await storage.get_client(CLIENT.client_id)
    assert client == CLIENT
    assert client is not None
    assert type(client.can_introspect) is bool
    assert type(client.scopes) is tuple
    assert await storage.get_token(TOKEN.token_id) == TOKEN
    assert await storage.find_token_by_hash(TOKEN.token_hash) == TOKEN
    assert await storage.get_user(USER.user_id) == USER
    assert await storage.get_user_by_name(USER.username) == USER
    assert await storage.find_code(CODE.code_hash) == CODE
    assert await storage.get_session(SESSION.session_hash, now=2_000) == SESSION
    assert KEY in await storage.list_signing_keys()
