"""The shipped systemd units parse: ``systemd-analyze verify`` on each, as installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the units are not verified")
    # As installed, with the command at a path that exists here (verify checks it).
    keyturn = Path(sys.executable).with_name("keyturn")
    names = []
    for unit in UNITS.glob("*.[st]*"):
        name = unit.name.replace("keyturn@.service", "keyturn@8001.service")
        text = unit.read_text().replace("/opt/keyturn/bin/keyturn", str(keyturn))
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    assert len(names) == 3, names
    done = subprocess.run(
        [analyze, "verify", *names], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    # Unknown keys and bad values are only warnings: there must be none.
    assert done.stderr.strip() == "", done.stderr
