"""Client-secret rotation with an overlap: the previous secret beside the current one.

Rotating a secret keeps the old one working until ``previous_secret_expires_at``,
so the clients of a fleet can move to the new secret without a failed request.
Columns on ``clients`` rather than a table of secrets: client authentication
reads exactly one row, as it did (a failure costs one database read, whatever
the id), and there are never more than two secrets to compare, always both
(`keyturn.server.client_auth`). A second rotation replaces the previous secret,
as Keycloak's single "rotated secret" does. ``secret_created_at`` stays NULL
for secrets set before this migration: when they were made was not recorded.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = (
    ("secret_created_at", sa.BigInteger),
    ("previous_secret_hash", sa.String(64)),
    ("previous_secret_created_at", sa.BigInteger),
    ("previous_secret_expires_at", sa.BigInteger),
)


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("clients", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch rebuild: rebuilding
    # ``clients`` drops the table, and SQLite's ON DELETE CASCADE would empty ``tokens``.
    for name, _ in reversed(COLUMNS):
        op.drop_column("clients", name)
