"""Storage fixtures shared by the driver-level tests (token reader, writer, revocation)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keyturn.storage.repository import SqlStorage
from tests.storage.test_token_writer import _storage


@pytest.fixture
async def sqlite_storage(tmp_path: Path) -> AsyncIterator[tuple[SqlStorage, str, Path]]:
    """A migrated SQLite file of this test's own, with one client: storage, client id, path."""
    path = tmp_path / "k.db"
    db, client_id = await _storage(f"sqlite+aiosqlite:///{path}")
    yield db, client_id, path
    await db.close()


@pytest.fixture
async def postgres_storage(postgres_database_url: str) -> AsyncIterator[tuple[SqlStorage, str]]:
    """Storage on this run's PostgreSQL database, with a client of its own: storage, client id."""
    db, client_id = await _storage(postgres_database_url)
    yield db, client_id
    await db.close()
