"""`explain`: which failures are the operator's to fix, and which are bugs."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from keyturn.server.operator_errors import OperatorError, explain
from keyturn.server.settings import Settings


def test_a_bug_is_not_explained() -> None:
    assert explain(RuntimeError("boom")) is None
    assert explain(KeyError("x")) is None
    assert explain(OSError(errno.EBADF, "Bad file descriptor")) is None  # no path: ours

    class Model(BaseModel):
        n: int

    with pytest.raises(ValidationError) as invalid:
        Model(n="x")  # type: ignore[arg-type]
    assert explain(invalid.value) is None  # only the Settings' are configuration


def test_found_anywhere_in_the_chain_and_in_groups(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    cause = FileExistsError(errno.EEXIST, "File exists", str(tmp_path / "data"))
    try:
        try:
            raise cause
        except OSError as exc:
            raise RuntimeError("while opening storage") from exc
    except RuntimeError as wrapped:
        group = ExceptionGroup("start-up", [ValueError("other"), wrapped])
    found = explain(group, settings)
    assert isinstance(found, OperatorError)
    assert str(found).count("\n") == 1
    assert "KEYTURN_DATA_DIR" in found.problem
    assert "is a file" in found.problem


def test_settings_errors_name_the_variable_and_hide_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEYTURN_DATABASE_URL", "postgresql+psycopg2://u:hunter2@h/db")
    with pytest.raises(ValidationError) as invalid:
        Settings()
    found = explain(invalid.value)
    assert found is not None
    assert found.problem.startswith("KEYTURN_DATABASE_URL / --database-url is invalid")
    assert "hunter2" not in str(found)
