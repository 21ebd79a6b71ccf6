"""Replays of a rotated refresh token's answer inside the grace window.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_replays",
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("ciphertext", sa.Text, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_token_replays_expires_at", "token_replays", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_token_replays_expires_at", "token_replays")
    op.drop_table("token_replays")
