"""User passwords: argon2id (argon2-cffi), verified off the event loop.

Unlike machine secrets these are low-entropy, so a memory-hard KDF is the
right trade. Hashing takes tens of milliseconds, so it runs in a worker thread;
an unknown username still pays for one verification, so timing does not tell
which usernames exist.
"""

from __future__ import annotations

import functools

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
MIN_LENGTH = 8


@functools.cache
def _dummy_hash() -> str:
    """What an unknown username is checked against (made once, on first use)."""
    return _hasher.hash("keyturn-dummy-password")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await anyio.to_thread.run_sync(_verify, password_hash, password)
