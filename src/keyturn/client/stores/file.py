"""A token store on the local disk, shared by every process of one user on one host.

Each key is one JSON file written atomically (temp file in the same directory,
``fsync``, ``os.replace``) with mode 0600 in a 0700 directory, so a crash never
leaves half a token and other users cannot read it. ``lock(key)`` is an
exclusive ``fcntl.flock`` on a sibling ``.lock`` file: processes (and threads)
that share the directory take turns at the token endpoint, and the manager
re-reads the file under the lock, so four processes starting together send one
token request. POSIX only.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from keyturn.core.token import OAuthToken

__all__ = ["FileTokenStore"]

log = logging.getLogger("keyturn.client")
_SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class FileTokenStore:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        import fcntl  # noqa: F401 - fail at construction, not at first use, off POSIX

        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, key: str, suffix: str) -> Path:
        if not _SAFE_KEY.match(key):
            raise ValueError("store keys are limited to letters, digits, '.', '_' and '-'")
        return self.directory / f"{key}{suffix}"

    def load(self, key: str) -> OAuthToken | None:
        path = self._path(key, ".json")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return OAuthToken.from_json(text)
        except (ValueError, KeyError, TypeError):
            log.warning("keyturn: ignoring unreadable token file %s", path.name)
            return None

    def save(self, key: str, token: OAuthToken) -> None:
        path = self._path(key, ".json")
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: mode 0600
                handle.write(token.to_json())
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

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        import fcntl

        fd = os.open(self._path(key, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.directory)!r})"
