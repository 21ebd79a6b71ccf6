"""Clients, issued tokens and signing keys.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("is_public", sa.Boolean, nullable=False),
        sa.Column("grant_types", sa.JSON, nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("audiences", sa.JSON, nullable=False),
        sa.Column("redirect_uris", sa.JSON, nullable=False),
        sa.Column("auth_methods", sa.JSON, nullable=False),
        sa.Column("access_token_lifetime", sa.Integer, nullable=True),
        sa.Column("rate_limit", sa.Integer, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column(
            "client_id",
            sa.String(128),
            sa.ForeignKey("clients.client_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("audience", sa.JSON, nullable=False),
        sa.Column("grant_type", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.Column("family_id", sa.String(64), nullable=True),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("kid", sa.String(64), nullable=True),
    )
    op.create_index("ix_tokens_client_subject", "tokens", ["client_id", "subject"])
    op.create_index("ix_tokens_expires_at", "tokens", ["expires_at"])
    op.create_index("ix_tokens_family_id", "tokens", ["family_id"])
    op.create_index("ix_tokens_kid_expires_at", "tokens", ["kid", "expires_at"])
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("activates_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_index("ix_tokens_kid_expires_at", "tokens")
    op.drop_index("ix_tokens_family_id", "tokens")
    op.drop_index("ix_tokens_expires_at", "tokens")
    op.drop_index("ix_tokens_client_subject", "tokens")
    op.drop_table("tokens")
    op.drop_table("clients")
