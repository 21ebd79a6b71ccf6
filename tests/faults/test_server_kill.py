"""``kill -9`` of the server under concurrent load loses no token a client received.

Every access token is recorded in the database before it is answered, so each
200 a client got must, after a restart on the same database, introspect
active and be listed by ``keyturn tokens list``. Tokens that were being
issued when the process died may be recorded without having been received;
that is allowed (the client never saw them), so the assertion is received
is a subset of recorded, and every received token is found.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.faults.conftest import (
    Load,
    PrivatePostgres,
    introspect_active,
    jti_of,
    kill9,
    listed_token_ids,
    start_server,
    stop_server,
    token_request,
)

pytestmark = pytest.mark.faults


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"
    cluster: PrivatePostgres = request.getfixturevalue("private_postgres")
    return cluster.create_database("kill_" + secrets.token_hex(4))


def test_kill_9_under_load_loses_no_received_token(database_url: str, tmp_path: Path) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    server = start_server(first_dir, database_url)
    try:
        client = server.create_client()
        auth = (client["client_id"], client["client_secret"])
        with Load(lambda http: token_request(http, server, auth), workers=16, seconds=15) as load:
            load.wait_received(300, timeout=10)
            kill9(server)  # while 16 requests are in flight
        assert server.process.returncode == -9
    finally:
        if server.process.poll() is None:
            stop_server(server)
    received = list(load.received)
    assert len(received) >= 300, load.histogram()
    assert load.histogram().keys() <= {
        "200",
        "ConnectError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
    }

    # Same database, same issuer (tokens name it), a new process on a new port.
    again = start_server(
        second_dir, database_url, extra_env={"KEYTURN_ISSUER": server.env["KEYTURN_ISSUER"]}
    )
    try:
        resource = again.create_client("--can-introspect")
        active = introspect_active(
            again, received, (resource["client_id"], resource["client_secret"])
        )
        listed = listed_token_ids(again, client["client_id"])
    finally:
        stop_server(again)
    found = {jti_of(t) for t in received} & listed
    print(
        f"\nkill -9 ({database_url.split(':')[0]}): received {len(received)}, "
        f"introspect active {active}, listed {len(listed)} (found {len(found)} of received)"
    )
    assert active == len(received)
    assert len(found) == len(received)
    assert "Traceback" not in again.log()
