"""Configuration and environment failures: two lines naming the setting, status 2.

Each case runs the real ``python -m keyturn.cli`` and breaks one thing for real:
a closed port, a missing database, a bad URL, a data directory that is a file
or on a file system root cannot write, a driver that cannot be imported.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from keyturn.testing.ports import closed_port
from tests.conftest import POSTGRES_URL, TEST_PEPPER

KEYTURN = [sys.executable, "-m", "keyturn.cli"]
# Runs the CLI with asyncpg unimportable, as on a machine without the postgres extra.
WITHOUT_ASYNCPG = [
    sys.executable,
    "-c",
    "import sys, runpy\n"
    "class NoAsyncpg:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'asyncpg':\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, NoAsyncpg())\n"
    "sys.argv[0] = 'keyturn'\n"
    "runpy.run_module('keyturn.cli', run_name='__main__', alter_sys=False)\n",
]
DATABASE_URL = "KEYTURN_DATABASE_URL"
DATA_DIR = "KEYTURN_DATA_DIR"


def keyturn(
    tmp_path: Path,
    *args: str,
    env: Mapping[str, str | None] | None = None,
    cmd: list[str] = KEYTURN,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, *args],
        env=environment(tmp_path, env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def environment(tmp_path: Path, changes: Mapping[str, str | None]) -> dict[str, str]:
    """This process's environment without KEYTURN_*, then a data dir, a pepper and
    ``changes`` (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(KEYTURN_DATA_DIR=str(tmp_path / "data"), KEYTURN_PEPPER=TEST_PEPPER)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def assert_operator_error(done: subprocess.CompletedProcess[str], *names: str) -> str:
    """Status 2, at most two lines on stderr, no traceback, each of ``names`` in them."""
    lines = done.stderr.rstrip("\n").split("\n")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) <= 2, done.stderr
    for name in names:
        assert name in done.stderr
    return done.stderr


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a directory\n")
    return path


CASES: list[tuple[str, dict[str, str | None], str, str]] = [
    ("malformed url", {DATABASE_URL: "not a url"}, DATABASE_URL, "not a database URL"),
    ("unknown scheme", {DATABASE_URL: "foo://bar"}, DATABASE_URL, "unknown database 'foo'"),
    ("sync driver", {DATABASE_URL: "postgresql+psycopg2://h/db"}, DATABASE_URL, "asynchronous"),
    ("lifetime not a number", {"KEYTURN_ACCESS_TOKEN_LIFETIME": "abc"}, "KEYTURN_ACCESS", "abc"),
    ("lifetime negative", {"KEYTURN_ACCESS_TOKEN_LIFETIME": "-5"}, "KEYTURN_ACCESS", "0"),
    ("pepper too short", {"KEYTURN_PEPPER": "abcd"}, "KEYTURN_PEPPER", "openssl rand -hex 32"),
    ("pepper short, not hex", {"KEYTURN_PEPPER": "zz-top"}, "KEYTURN_PEPPER", "64 hex"),
    ("redis url", {"KEYTURN_REDIS_URL": "localhost:6379"}, "KEYTURN_REDIS_URL", "redis://"),
]


@pytest.mark.parametrize(
    ("env", "setting", "detail"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_setting(tmp_path: Path, env: dict[str, str | None], setting: str, detail: str) -> None:
    stderr = assert_operator_error(keyturn(tmp_path, "clients", "list", env=env), setting)
    assert detail in stderr
    if "KEYTURN_PEPPER" in env:
        assert str(env["KEYTURN_PEPPER"]) not in stderr  # a secret, even a bad one, is not echoed


def test_unreachable_postgres_for_every_command_group(tmp_path: Path) -> None:
    env = environment(
        tmp_path, {DATABASE_URL: f"postgresql://postgres:hunter2@127.0.0.1:{closed_port()}/x"}
    )
    commands = [
        ["clients", "list"],
        ["tokens", "list"],
        ["keys", "list"],
        ["users", "list"],
        ["db", "upgrade"],
        ["serve", "--port", str(closed_port())],
    ]
    # Side by side: each is a process of its own, and the run takes one's time, not six.
    running = [
        subprocess.Popen([*KEYTURN, *args], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for args in commands
    ]  # fmt: skip
    for process in running:
        out, err = process.communicate(timeout=60)
        done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        stderr = assert_operator_error(done, DATABASE_URL)
        assert "connection refused" in stderr
        assert "hunter2" not in stderr


def test_unknown_postgres_host(tmp_path: Path) -> None:
    env = {DATABASE_URL: "postgresql://postgres@no-such-host.invalid/x"}
    stderr = assert_operator_error(keyturn(tmp_path, "db", "upgrade", env=env), DATABASE_URL)
    assert "does not resolve" in stderr


def test_postgres_database_that_does_not_exist(tmp_path: Path, postgres_database_url: str) -> None:
    missing = f"{POSTGRES_URL.rsplit('/', 1)[0]}/keyturn_missing_{secrets.token_hex(4)}"
    done = keyturn(tmp_path, "tokens", "list", env={DATABASE_URL: missing})
    stderr = assert_operator_error(done, DATABASE_URL)
    assert "does not exist" in stderr
    assert "createdb" in stderr


def test_postgres_without_asyncpg(tmp_path: Path) -> None:
    env = {DATABASE_URL: f"postgresql://postgres@127.0.0.1:{closed_port()}/x"}
    done = keyturn(tmp_path, "clients", "list", env=env, cmd=WITHOUT_ASYNCPG)
    stderr = assert_operator_error(done, DATABASE_URL, "asyncpg")
    assert 'pip install "keyturn[postgres]"' in stderr


def test_explicit_sqlite_url_in_a_missing_directory_makes_no_directory(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "dir"
    done = keyturn(tmp_path, "clients", "list", env={DATABASE_URL: f"sqlite:///{missing}/x.db"})
    stderr = assert_operator_error(done, DATABASE_URL, str(missing))
    assert "does not exist" in stderr
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    ("where", "pepper"),
    [("a file", "env"), ("under a file", "file"), ("read-only", "env"), ("read-only", "file")],
)
def test_unusable_data_dir(tmp_path: Path, where: str, pepper: str) -> None:
    if where == "read-only":
        # Not a chmod: tests run as root, whom modes do not stop. sysfs refuses root too.
        data_dir = Path("/sys")
        if not data_dir.is_dir() or _can_create(data_dir):
            pytest.skip("no directory here that refuses new files even to root")
        expected = "not writable"
    elif where == "a file":
        data_dir, expected = a_file(tmp_path), "is a file"
    else:
        data_dir, expected = a_file(tmp_path) / "keyturn", "is a file"
    env: dict[str, str | None] = {DATA_DIR: str(data_dir)}
    if pepper == "file":
        env["KEYTURN_PEPPER"] = None
    # A command that makes the database: one that only reads makes nothing to fail on.
    stderr = assert_operator_error(keyturn(tmp_path, "db", "upgrade", env=env), DATA_DIR)
    assert expected in stderr


def _can_create(directory: Path) -> bool:
    probe = directory / f"keyturn-probe-{secrets.token_hex(4)}"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


def test_busy_port_for_serve(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = keyturn(tmp_path, "serve", "--port", str(port))
    assert_operator_error(done, "--port", str(port))


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = {DATABASE_URL: f"postgresql://postgres@127.0.0.1:{closed_port()}/x"}
    done = keyturn(tmp_path, "--debug", "clients", "list", env=env)
    assert done.returncode == 2
    assert "Traceback" in done.stderr
    assert "ConnectionRefusedError" in done.stderr
    assert done.stderr.rstrip("\n").split("\n")[-2].startswith("error: cannot connect")


def test_a_user_error_is_not_an_operator_error(tmp_path: Path) -> None:
    assert keyturn(tmp_path, "db", "upgrade").returncode == 0
    done = keyturn(tmp_path, "clients", "show", "no-such-client")
    assert done.returncode == 1
    assert "no client" in done.stderr


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_another_pepper_than_the_keys_were_made_with(tmp_path: Path, alg: str) -> None:
    """The keys in the database are encrypted under the pepper: a changed pepper is said
    in two lines by every command that opens them, serve first of all, not a traceback
    per worker."""
    made = keyturn(tmp_path, "clients", "create", "--name", "a", env={"KEYTURN_SIGNING_ALG": alg})
    assert made.returncode == 0, made.stderr
    other = secrets.token_hex(32)
    env = {"KEYTURN_PEPPER": other, "KEYTURN_SIGNING_ALG": alg}
    for args in (("serve", "--port", str(closed_port())), ("tokens", "list")):
        done = keyturn(tmp_path, *args, env=env)
        stderr = assert_operator_error(done, "do not decrypt with this pepper", "KEYTURN_PEPPER")
        assert other not in stderr
    served = keyturn(tmp_path, "tokens", "list", env={"KEYTURN_SIGNING_ALG": alg})
    assert served.returncode == 0, served.stderr  # the right pepper still opens them
