"""Clients may be allowed to introspect any token; index for purging revoked rows.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(
            sa.Column("can_introspect", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_index("ix_tokens_revoked_at", "tokens", ["revoked_at"])
    op.create_index("ix_tokens_issued_at_id", "tokens", ["issued_at", "token_id"])


def downgrade() -> None:
    op.drop_index("ix_tokens_issued_at_id", "tokens")
    op.drop_index("ix_tokens_revoked_at", "tokens")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("can_introspect")
