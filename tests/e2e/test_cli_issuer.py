"""The CLI mints tokens for the issuer the server runs as (issue 17, item 10).

``keyturn serve`` on a port other than 8000 records its issuer in the data
directory; ``keyturn tokens create`` and ``keyturn clients create`` run without
``KEYTURN_ISSUER`` then use it, so a guard accepts the CLI's tokens. Where no
server has run and no issuer is set, the CLI refuses to mint rather than guess.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jwt as pyjwt

from keyturn.guard import TokenVerifier
from tests.e2e.conftest import KEYTURN, LiveServer


def cli_without_issuer(
    server: LiveServer, *args: str, data_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in server.env.items() if k != "KEYTURN_ISSUER"}
    if data_dir is not None:
        env["KEYTURN_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [*KEYTURN, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_tokens_minted_by_the_cli_carry_the_servers_issuer(live_server: LiveServer) -> None:
    assert not live_server.url.endswith(":8000")
    made = cli_without_issuer(live_server, "clients", "create", "--rate-limit", "0")
    assert made.returncode == 0, made.stderr
    assert f"{live_server.url}/oauth/token" in made.stdout  # the curl line
    client_id = made.stdout.split("client_id:", 1)[1].split()[0]

    done = cli_without_issuer(live_server, "tokens", "create", "--client-id", client_id, "--json")
    assert done.returncode == 0, done.stderr
    token = json.loads(done.stdout)["access_token"]
    assert pyjwt.decode(token, options={"verify_signature": False})["iss"] == live_server.url
    with TokenVerifier(live_server.url, live_server.url) as guard:
        assert guard.verify(token).client_id == client_id


def test_with_no_known_issuer_the_cli_refuses_to_mint(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """Another data directory, where no server ran (the database is the live one's)."""
    client = live_server.create_client()
    done = cli_without_issuer(
        live_server, "tokens", "create", "--client-id", client["client_id"], data_dir=tmp_path
    )
    assert done.returncode == 1
    assert "issuer is unknown" in done.stderr
    assert "KEYTURN_ISSUER" in done.stderr
    assert "access_token" not in done.stdout
    made = cli_without_issuer(live_server, "clients", "create", data_dir=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "SERVER/oauth/token" in made.stdout
    assert "127.0.0.1:8000" not in made.stdout
