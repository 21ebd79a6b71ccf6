"""Table definitions (SQLAlchemy Core), the single source the migrations mirror.

Times are integer Unix seconds: cheap to compare and index, identical on SQLite
and PostgreSQL, and free of naive/aware datetime mix-ups.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

LOOKED_UP_BY_HASH = "kind <> 'access_token'"
"""Which token rows the hash index holds; a hash lookup must say so too, for
SQLite and PostgreSQL to use a partial index."""


def _partial_index(name: str, column: str, where: str, *, unique: bool = False) -> Index:
    """An index of only the rows ``where`` selects, on SQLite and PostgreSQL alike."""
    return Index(
        name, column, unique=unique, sqlite_where=text(where), postgresql_where=text(where)
    )


def _owned_by(key: str, type_: String, *, primary_key: bool = False) -> Column[str]:
    """A reference to the row that owns this one (``table.column``): deleting that
    row deletes this one where the database enforces it."""
    column = key.partition(".")[2]
    return Column(
        column, type_, ForeignKey(key, ondelete="CASCADE"), primary_key=primary_key, nullable=False
    )


clients = Table(
    "clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("secret_hash", String(64), nullable=True),
    Column("is_public", Boolean, nullable=False, default=False),
    Column("grant_types", JSON, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("audiences", JSON, nullable=False),
    Column("redirect_uris", JSON, nullable=False),
    Column("auth_methods", JSON, nullable=False),
    Column("access_token_lifetime", Integer, nullable=True),
    Column("rate_limit", Integer, nullable=True),
    Column("can_introspect", Boolean, nullable=False, default=False),
    Column("allow_plain_pkce", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # Secret rotation with an overlap (migration 0009): the secret before the
    # current one keeps working until previous_secret_expires_at.
    Column("secret_created_at", BigInteger, nullable=True),
    Column("previous_secret_hash", String(64), nullable=True),
    Column("previous_secret_created_at", BigInteger, nullable=True),
    Column("previous_secret_expires_at", BigInteger, nullable=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_id", String(64), primary_key=True),
    # Keyed hash, never the token: of an opaque token's value; of an access
    # token's signing input (header.payload), which its signature completes.
    Column("token_hash", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    _owned_by("clients.client_id", String(128)),
    Column("subject", String(255), nullable=True),
    Column("scope", Text, nullable=False, default=""),
    Column("audience", JSON, nullable=False),
    Column("grant_type", String(64), nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("family_id", String(64), nullable=True),
    Column("parent_id", String(64), nullable=True),
    Column("kid", String(64), nullable=True),
    # When the user authenticated, for ID tokens issued on refresh (user grants only).
    Column("auth_time", BigInteger, nullable=True),
    # Listings, newest first: by client, by subject (within a client), by time
    # (migration 0010). Ties of one second are ordered by token_id on the spot.
    # PostgreSQL stores equal keys once, so there (subject, client_id) is a
    # tenth of the size it has with issued_at, and its statistics pick the plan.
    Index("ix_tokens_client_issued_at", "client_id", "issued_at"),
    Index("ix_tokens_subject_client", "subject", "client_id", "issued_at").ddl_if(dialect="sqlite"),
    Index("ix_tokens_subject_client", "subject", "client_id").ddl_if(dialect="postgresql"),
    Index("ix_tokens_issued_at", "issued_at"),
    Index("ix_tokens_expires_at", "expires_at"),
    # Partial: most tokens have no family and are never revoked, so these two
    # B-trees are not written at all by their inserts (migration 0006).
    _partial_index("ix_tokens_family_id", "family_id", "family_id IS NOT NULL"),
    Index("ix_tokens_kid_expires_at", "kid", "expires_at"),
    _partial_index("ix_tokens_revoked_at", "revoked_at", "revoked_at IS NOT NULL"),
    # Access tokens are found by their jti (the primary key), so only opaque
    # tokens are indexed by hash; the one random-keyed index of this table is
    # not written by access-token inserts (migration 0007).
    _partial_index("ix_tokens_token_hash", "token_hash", LOOKED_UP_BY_HASH, unique=True),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("private_key", Text, nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("activates_at", BigInteger, nullable=False),
)

token_replays = Table(
    "token_replays",
    metadata,
    # The rotated refresh token whose answer this is.
    Column("token_id", String(64), primary_key=True),
    # The answer, encrypted under a key derived from the old refresh token's
    # value, which is never stored: the row is useless without that token.
    Column("ciphertext", Text, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_token_replays_expires_at", "expires_at"),
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),  # argon2id
    Column("name", String(255), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    # Keyed hash of the session cookie's value; the value itself is never stored.
    Column("session_hash", String(64), primary_key=True),
    _owned_by("users.user_id", String(64)),
    Column("auth_time", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_sessions_expires_at", "expires_at"),
)

consents = Table(
    "consents",
    metadata,
    _owned_by("users.user_id", String(64), primary_key=True),
    _owned_by("clients.client_id", String(128), primary_key=True),
    Column("scope", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_id", String(64), primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    _owned_by("clients.client_id", String(128)),
    Column("user_id", String(64), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("code_challenge", String(128), nullable=True),
    Column("code_challenge_method", String(16), nullable=True),
    Column("nonce", Text, nullable=True),
    Column("auth_time", BigInteger, nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("consumed_at", BigInteger, nullable=True),
    # Every token issued from this code shares it, so a replay revokes them all.
    Column("family_id", String(64), nullable=False),
    Index("ix_authorization_codes_expires_at", "expires_at"),
)

denylist = Table(
    "denylist",
    metadata,
    # Every revoked access token that is not expired yet, deleted ones included:
    # the durable truth that the Redis deny-list is rebuilt from (migration 0008).
    Column("token_id", String(64), primary_key=True),
    Column("revoked_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    # When this process or another last put it in Redis; NULL = still to publish.
    Column("published_at", BigInteger, nullable=True),
    _partial_index("ix_denylist_unpublished", "revoked_at", "published_at IS NULL"),
    Index("ix_denylist_expires_at", "expires_at"),
)
