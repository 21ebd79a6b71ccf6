"""Indexes that answer the admin listings in time order, whatever the table's size.

A page of tokens is the newest first, by ``(issued_at, token_id)``. On SQLite,
listing one client's tokens found them through ``(client_id, subject)`` and then
sorted all of them: 1.3 s for a client with 570,000 tokens in a 1,000,000-row
table (9-22 s at 11 M rows). Listing one user's tokens scanned the table in
time order (0.3 s at 1 M). Now:

- ``(client_id, issued_at)`` reads a client's newest tokens in order, and stops
  at the page's end;
- ``(subject, client_id, issued_at)`` does so for a subject within a client,
  and finds a subject's own tokens (a user's are few) without a scan. It
  replaces ``(client_id, subject)``, which it covers for every query that used
  it (revoking and deleting by client, or by client and subject);
- ``(issued_at)`` replaces ``(issued_at, token_id)``: the ties of one second are
  put in ``token_id`` order by the database on the spot, so the id need not be
  in the key.

Measured on 1 M rows, SQLite: every listing query under 0.5 ms, deep pages
included (``benchmarks/table_growth.py``, through the admin API: 0.7-2.8 s ->
6-7 ms), for 16 bytes more per token in all (523 -> 539, +3 %).

PostgreSQL stores equal keys of a B-tree once (deduplication), which made the
old ``(client_id, subject)`` a tenth of the size of any index with
``issued_at`` in it, and its statistics already chose a fast plan for a busy
client. There the subject index is ``(subject, client_id)`` (8.8 MB for 1 M
rows, against 72 MB with ``issued_at``); ``(client_id, issued_at)`` is still
added, so a client whose tokens are few or old is not found by scanning the
newest tokens of all. Every listing query under 1 ms, for 39 bytes more per
token (588 -> 627, +6.6 %) once the indexes have grown with the table: inserts
in the middle of ``(client_id, issued_at)`` split its pages half full (right
after this migration builds them, +7). Building the indexes takes about 3-5 s
per million tokens on either database, while the table takes no writes.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _new() -> tuple[tuple[str, list[str]], ...]:
    deduplicated = op.get_bind().dialect.name == "postgresql"
    subject = ["subject", "client_id"] if deduplicated else ["subject", "client_id", "issued_at"]
    return (
        ("ix_tokens_client_issued_at", ["client_id", "issued_at"]),
        ("ix_tokens_subject_client", subject),
        ("ix_tokens_issued_at", ["issued_at"]),
    )


OLD = (
    ("ix_tokens_client_subject", ["client_id", "subject"]),
    ("ix_tokens_issued_at_id", ["issued_at", "token_id"]),
)


def upgrade() -> None:
    for name, columns in _new():  # first, so no query is left without an index meanwhile
        op.create_index(name, "tokens", columns)
    for name, _ in OLD:
        op.drop_index(name, "tokens")


def downgrade() -> None:
    for name, columns in OLD:
        op.create_index(name, "tokens", columns)
    for name, _ in _new():
        op.drop_index(name, "tokens")
