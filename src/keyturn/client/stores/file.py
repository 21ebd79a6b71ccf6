"""A token store on the local disk, shared by every process of one user on one host.

Each key is one JSON file written atomically (temp file in the same directory,
``fsync``, ``os.replace``) with mode 0600 in a 0700 directory (on POSIX), so a
crash never leaves half a token and other users cannot read it. ``lock(key)`` is
an exclusive lock on a sibling ``.lock`` file taken with `filelock` (``flock`` on
POSIX, ``LockFileEx`` on Windows): processes and threads that share the
directory take turns at the token endpoint, and the manager re-reads the file
under the lock, so four processes starting together send one token request.

Encryption at rest is optional and the key is the caller's, as in
msal-extensions (which encrypts its token cache with the platform's secret
store): ``FileTokenStore(directory, encryption_key=key)`` seals each file with
Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`). Give several keys
to rotate: the first seals, any of them opens. A file that no key opens, or
that was written unencrypted, reads as "no token" (and is logged), so a
changed key costs one new token, never a crash or a plaintext fallback.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from filelock import FileLock, Timeout

from keyturn.core.errors import StoreLockTimeoutError
from keyturn.core.token import OAuthToken

__all__ = ["FileTokenStore", "generate_key"]

log = logging.getLogger("keyturn.client")
_SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]{1,200}$")

Key = str | bytes


def generate_key() -> str:
    """A new random key for ``encryption_key`` (url-safe base64, 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


def _sealer(keys: Key | Sequence[Key] | None) -> MultiFernet | None:
    if keys is None:
        return None
    listed = [keys] if isinstance(keys, str | bytes) else list(keys)
    if not listed:
        raise ValueError("encryption_key is an empty list")
    try:
        return MultiFernet([Fernet(k) for k in listed])
    except (ValueError, TypeError):
        raise ValueError(
            "encryption_key must be 32 url-safe base64-encoded bytes: use generate_key()"
        ) from None


class _TokenFileLock(FileLock):
    """filelock's lock, whose timeout is Keyturn's error, saying what to do."""

    def acquire(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().acquire(*args, **kwargs)
        except Timeout:
            raise StoreLockTimeoutError(
                f"waited {self.timeout:g} s for the token lock {self.lock_file}, held by "
                "another process or thread fetching the same token; retry, or raise "
                "FileTokenStore(lock_timeout=...)"
            ) from None


class FileTokenStore:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        encryption_key: Key | Sequence[Key] | None = None,
        lock_timeout: float = 90.0,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._sealer = _sealer(encryption_key)
        self.lock_timeout = lock_timeout

    @property
    def encrypted(self) -> bool:
        return self._sealer is not None

    def _path(self, key: str, suffix: str) -> Path:
        if not _SAFE_KEY.match(key):
            raise ValueError("store keys are limited to letters, digits, '.', '_' and '-'")
        return self.directory / f"{key}{suffix}"

    def load(self, key: str) -> OAuthToken | None:
        path = self._path(key, ".json")
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            if self._sealer is not None:
                raw = self._sealer.decrypt(raw)
            return OAuthToken.from_json(raw)
        except InvalidToken:
            log.warning("keyturn: token file %s does not open with the given key", path.name)
            return None
        except (ValueError, KeyError, TypeError):
            log.warning("keyturn: ignoring unreadable token file %s", path.name)
            return None

    def save(self, key: str, token: OAuthToken) -> None:
        path = self._path(key, ".json")
        data = token.to_json().encode("utf-8")
        if self._sealer is not None:
            data = self._sealer.encrypt(data)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:  # mkstemp: mode 0600
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self, key: str, expected: OAuthToken | None = None) -> bool:
        """Compare-and-clear; atomic against other processes while `lock` is held."""
        current = self.load(key)
        if current is None or (expected is not None and not current.same_grant(expected)):
            return False
        self._path(key, ".json").unlink(missing_ok=True)
        return True

    def lock(self, key: str) -> FileLock:
        """An exclusive cross-process lock for ``key``, a new one per call; after
        ``lock_timeout`` seconds of waiting it raises `StoreLockTimeoutError`.

        Not thread-local (the async shell may take it in one worker thread and
        release it in another) and not shared, so threads of one process
        exclude each other as processes do.
        """
        return _TokenFileLock(
            self._path(key, ".lock"),
            timeout=self.lock_timeout,
            mode=0o600,
            thread_local=False,
            preserve_lock_file=True,
        )

    def __repr__(self) -> str:
        sealed = ", encrypted" if self.encrypted else ""
        return f"FileTokenStore({str(self.directory)!r}{sealed})"
