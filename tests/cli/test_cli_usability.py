"""The CLI says what it does, and the README says what the CLI does (issue 17, item 16)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from keyturn.cli import app, hoist_global_options
from tests.conftest import TEST_PEPPER

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
COMMAND = typer.main.get_command(app)


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += command_paths(sub, (*path, name))
    return found


def readme_block(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return section.split("```text", 1)[1].split("```", 1)[0]


def test_the_readme_summary_names_every_clients_create_option() -> None:
    summary = readme_block("### Command line")
    create = COMMAND.commands["clients"].commands["create"]  # type: ignore[attr-defined]
    for param in create.params:
        for opt in param.opts:
            if opt.startswith("--"):
                assert opt in summary, opt


def test_the_authorization_code_example_uses_the_public_client_it_creates() -> None:
    created = re.search(r"keyturn clients create --name web --public[^`]*", README)
    assert created is not None
    redirect = re.search(r"--redirect-uri (\S+)", created.group(0))
    assert redirect is not None
    example = next(
        block
        for block in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
        if "AuthorizationCodeCredentials(" in block
    )
    assert "client_secret" not in example
    assert f'redirect_uri="{redirect.group(1)}"' in example


def test_the_introspection_permission_is_documented() -> None:
    assert "--can-introspect" in README
    assert "Who may introspect and revoke what" in README


@pytest.mark.parametrize("path", command_paths(COMMAND), ids=" ".join)
def test_help_shows_no_markup_and_no_placeholders(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "``" not in result.output
    assert "<bool>" not in result.output


def test_tokens_revoke_without_arguments_says_what_to_give() -> None:
    result = CliRunner().invoke(app, ["tokens", "revoke"])
    assert result.exit_code == 1
    assert "give the token's id" in result.output
    assert "not both" not in result.output
    both = CliRunner().invoke(app, ["tokens", "revoke", "abc", "--token", "x"])
    assert both.exit_code == 1
    assert "not both" in both.output


@pytest.mark.parametrize(
    ("args", "what"),
    [(["clients", "delete", "c-1"], "client c-1"), (["users", "delete", "bob"], "user bob")],
)
def test_answering_no_says_nothing_was_done(args: list[str], what: str) -> None:
    result = CliRunner().invoke(app, args, input="n\n")
    assert result.exit_code == 1
    assert f"aborted: {what} was not deleted" in result.output


def test_global_options_move_before_the_command() -> None:
    assert hoist_global_options(["clients", "list", "--data-dir", "D", "--json"]) == [
        "--data-dir",
        "D",
        "clients",
        "list",
        "--json",
    ]
    assert hoist_global_options(["tokens", "list", "--database-url=sqlite://", "--debug"]) == [
        "--database-url=sqlite://",
        "--debug",
        "tokens",
        "list",
    ]
    assert hoist_global_options(["--data-dir", "D", "db", "upgrade"]) == [
        "--data-dir",
        "D",
        "db",
        "upgrade",
    ]
    assert hoist_global_options(["users", "create", "--", "--debug"]) == [
        "users",
        "create",
        "--",
        "--debug",
    ]


def test_a_global_option_after_the_command_works(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env["KEYTURN_PEPPER"] = TEST_PEPPER
    for args in (["db", "upgrade"], ["clients", "list", "--json"]):  # `list` makes no database
        done = subprocess.run(
            [sys.executable, "-m", "keyturn", *args, "--data-dir", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    assert (tmp_path / "keyturn.db").exists()
