"""The issuer ``keyturn serve`` last ran as, kept with the data, for the other commands.

A token's ``iss`` must be the URL its verifiers expect: the server's. The CLI
runs in another process, often without ``KEYTURN_ISSUER`` (``keyturn serve
--port 18400`` sets it for itself only), so it used to mint tokens for
``http://127.0.0.1:8000`` that every guard refused. Now ``serve`` writes its
issuer to ``DATA_DIR/issuer`` when it starts, and a command that mints a token
or shows the server's URL takes, in order: an issuer set explicitly
(``KEYTURN_ISSUER``), else that file, else none, and then refuses to mint
rather than guess.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from keyturn.server.settings import Settings

__all__ = ["ISSUER_FILE", "UnknownIssuerError", "issuer_path", "record", "resolve"]

ISSUER_FILE = "issuer"


class UnknownIssuerError(Exception):
    """No issuer was set and no server has recorded one in this data directory."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            "the server's issuer is unknown here, so a token minted now would carry a "
            "wrong iss: set KEYTURN_ISSUER to the server's public URL, or start "
            f"`keyturn serve` once with this data directory (it records its issuer in {path})"
        )


def issuer_path(settings: Settings) -> Path:
    return settings.data_dir / ISSUER_FILE


def record(settings: Settings) -> Path:
    """Write ``settings``' issuer where the other commands look (atomically)."""
    path = issuer_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".issuer-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(settings.issuer_url + "\n")
        os.chmod(tmp, 0o644)  # not a secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve(settings: Settings) -> Settings:
    """``settings`` with the issuer the server runs as; `UnknownIssuerError` if none."""
    if "issuer" in settings.model_fields_set:
        return settings
    path = issuer_path(settings)
    try:
        recorded = path.read_text().strip()
    except FileNotFoundError:
        raise UnknownIssuerError(path) from None
    if not recorded:
        raise UnknownIssuerError(path)
    return settings.model_copy(update={"issuer": recorded})
