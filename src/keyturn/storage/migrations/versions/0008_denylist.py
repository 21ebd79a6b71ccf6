"""The durable deny-list: revoked access tokens until they expire.

Redis holds the deny-list that guards read, but Redis is a cache: a revocation
made while it was down was never published, and a Redis restarted without its
data forgot every entry. This table is what Redis is rebuilt from. Each
revocation writes its row in the same transaction as the revocation, unpublished;
every server process publishes pending rows and republishes all of them when
Redis comes back empty (server/denylist.py). Access tokens revoked before this
migration and not yet expired are copied in, unpublished.

Revision ID: 0008
Revises: 0007
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "denylist",
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("revoked_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("published_at", sa.BigInteger, nullable=True),
    )
    unpublished = sa.text("published_at IS NULL")
    op.create_index(
        "ix_denylist_unpublished",
        "denylist",
        ["revoked_at"],
        sqlite_where=unpublished,
        postgresql_where=unpublished,
    )
    op.create_index("ix_denylist_expires_at", "denylist", ["expires_at"])
    op.execute(
        sa.text(
            "INSERT INTO denylist (token_id, revoked_at, expires_at) "
            "SELECT token_id, revoked_at, expires_at FROM tokens "
            "WHERE kind = 'access_token' AND revoked_at IS NOT NULL AND expires_at > :now"
        ).bindparams(now=int(time.time()))
    )


def downgrade() -> None:
    op.drop_index("ix_denylist_expires_at", "denylist")
    op.drop_index("ix_denylist_unpublished", "denylist")
    op.drop_table("denylist")
