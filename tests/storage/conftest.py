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
