"""User accounts for the user grants (authorization code, password)."""

from __future__ import annotations

import re
import secrets
import time

from keyturn.server.passwords import hash_password
from keyturn.storage.records import User

_USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{1,255}$")


def build_user(username: str, password: str, name: str = "") -> User:
    if not _USERNAME.match(username):
        raise ValueError("a username is 1-255 letters, digits or . _ @ + -")
    now = int(time.time())
    return User(
        user_id="usr_" + secrets.token_urlsafe(12),
        username=username,
        password_hash=hash_password(password),
        name=name,
        created_at=now,
        updated_at=now,
    )


def with_password(user: User, password: str) -> User:
    return User(
        user_id=user.user_id,
        username=user.username,
        password_hash=hash_password(password),
        name=user.name,
        created_at=user.created_at,
        updated_at=int(time.time()),
    )
