"""Every admin listing reads its page through an index in its own order.

A page is the newest tokens first. Without an index in that order for its
filter, the database reads and sorts every matching row (all of a busy
client's tokens: seconds at a million rows) or scans the whole table, and
nothing in a small test table would show it. So the plans are checked: on
SQLite as its planner chooses them (it has no statistics: the choice depends
on the schema alone), and on PostgreSQL with sequential scans priced out, so
an empty table shows which index it would use (on data, PostgreSQL then sorts
only the ties of one second: "Incremental Sort", measured in
benchmarks/table_growth.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from keyturn.storage import database
from keyturn.storage.repository import TokenFilter, listing_query

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000
CURSOR = (1_799_000_000, "0abc")
# filter, the index that must yield its rows, and whether a cursor page is asked
CASES = [
    (TokenFilter(client_id="c"), "ix_tokens_client_issued_at"),
    (TokenFilter(client_id="c", active=True), "ix_tokens_client_issued_at"),
    (TokenFilter(client_id="c", subject="u"), "ix_tokens_subject_client"),
    (TokenFilter(subject="u"), "ix_tokens_subject_client"),
    (TokenFilter(), "ix_tokens_issued_at"),
]


def _sql(flt: TokenFilter, dialect: object, after: tuple[int, str] | None) -> str:
    query = listing_query(flt, NOW, 50, after)
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    import anyio

    path: Path = tmp_path_factory.mktemp("plans") / "keyturn.db"
    url = f"sqlite+aiosqlite:///{path}"

    async def migrate() -> None:
        engine = database.create_engine(url)
        try:
            await database.upgrade(engine)
        finally:
            await engine.dispose()

    anyio.run(migrate)
    return f"sqlite:///{path}"


@pytest.mark.parametrize("after", [None, CURSOR], ids=["first page", "cursor page"])
@pytest.mark.parametrize(("flt", "index"), CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
def test_sqlite_reads_each_listing_in_order_through_its_index(
    sqlite_url: str, flt: TokenFilter, index: str, after: tuple[int, str] | None
) -> None:
    engine = create_sync_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            sql = _sql(flt, sqlite.dialect(), after)
            plan = " | ".join(row[3] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
    finally:
        engine.dispose()
    assert re.search(rf"USING INDEX {index}\b", plan), plan
    if flt.subject is None or flt.client_id is not None:
        # In index order: at most the ties of one second are sorted, never the whole set,
        # and a later page starts at its cursor, not at the newest row.
        assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
        assert after is None or "issued_at<" in plan, plan
    # A subject alone (a user's tokens, few) is found by the index, then sorted.


async def test_postgres_reads_each_listing_through_its_index(postgres_database_url: str) -> None:
    engine = database.create_engine(postgres_database_url)
    try:
        await database.upgrade(engine)
        async with engine.connect() as conn:
            await conn.execute(text("SET enable_seqscan = off"))
            for flt, index in CASES:
                if flt.client_id and flt.subject:
                    # Either index serves: which one is for PostgreSQL's statistics
                    # to say (both under 1 ms on 1 M rows, for a busy client's own
                    # subject and for a user in it alike).
                    index = "ix_tokens_(client_issued_at|subject_client)"
                for after in (None, CURSOR):
                    sql = _sql(flt, postgresql.dialect(), after)
                    rows = await conn.execute(text("EXPLAIN " + sql))
                    plan = " | ".join(str(row[0]) for row in rows)
                    # Which index, only: on an empty table a full sort of its one
                    # estimated row is as cheap as the incremental one it makes on data.
                    assert re.search(rf"\b{index}\b", plan), (flt, after, plan)
    finally:
        await engine.dispose()
