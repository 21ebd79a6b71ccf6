"""What Keyturn creates on disk is private: data dir 0700, database and pepper 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import free_port

KEYTURN = [sys.executable, "-m", "keyturn.cli"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_default_data_dir_database_and_pepper_are_private(tmp_path: Path) -> None:
    """A real server on the defaults: no KEYTURN_DATABASE_URL, no KEYTURN_PEPPER."""
    data_dir = tmp_path / "share" / "keyturn"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(KEYTURN_DATA_DIR=str(data_dir), KEYTURN_SIGN_PROCESSES="0")
    log = tmp_path / "server.log"
    old_umask = os.umask(0o022)  # the usual umask, which leaves 0644 files world-readable
    try:
        with log.open("wb") as out:
            server = subprocess.Popen(
                [*KEYTURN, "serve", "--port", str(port)], env=env, stdout=out, stderr=out
            )
    finally:
        os.umask(old_umask)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                r = httpx2.get(f"http://127.0.0.1:{port}/.well-known/jwks.json", timeout=1)
                if r.is_success:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        # While the server runs, SQLite holds its -wal and -shm files open.
        created = {p.name: mode(p) for p in data_dir.iterdir()}
        assert mode(data_dir) == 0o700
        assert created["keyturn.db"] == 0o600
        assert created["pepper"] == 0o600
        assert created["keyturn.db-wal"] == 0o600
        assert created["keyturn.db-shm"] == 0o600
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_cli_creates_the_same_private_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env["KEYTURN_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [*KEYTURN, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "keyturn.db") == 0o600
    assert mode(data_dir / "pepper") == 0o600


@pytest.mark.anyio
async def test_explicit_sqlite_file_is_0600_and_its_directory_is_not_made(tmp_path: Path) -> None:
    from keyturn.storage import database

    engine = database.create_engine(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        await database.upgrade(engine)
    finally:
        await engine.dispose()
    assert mode(tmp_path / "k.db") == 0o600
    with pytest.raises(FileNotFoundError):
        database.create_engine(f"sqlite:///{tmp_path / 'missing' / 'k.db'}")
    assert not (tmp_path / "missing").exists()
