"""What users look for first: ``keyturn --version``, ``python -m keyturn``, the license."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version_matches_the_installed_distribution_and_pyproject() -> None:
    done = run("-m", "keyturn.cli", "--version")
    assert done.returncode == 0, done.stderr
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert done.stdout == f"keyturn {version('keyturn')}\n"
    assert version("keyturn") == pyproject["project"]["version"]


def test_python_dash_m_keyturn_is_the_keyturn_command() -> None:
    done = run("-m", "keyturn", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("keyturn ")
    helped = run("-m", "keyturn", "--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "clients", "keys", "tokens", "db"):
        assert command in helped.stdout
    # Errors keep the two-line form and status 2 of the keyturn command.
    bad = subprocess.run(
        [sys.executable, "-m", "keyturn", "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"KEYTURN_FORWARDED_ALLOW_IPS": "10.0.0.0/33", "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 2, bad.stderr
    assert "KEYTURN_FORWARDED_ALLOW_IPS" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_license_file_is_the_apache_license_pyproject_declares() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = pyproject["project"]["license"]
    declared = declared if isinstance(declared, str) else declared.get("text", "")
    assert declared == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
