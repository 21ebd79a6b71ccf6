"""PostgreSQL stopped under load, then started again on the same port.

During the outage every answer is ``503`` with ``Retry-After`` and an RFC
6749-style JSON error -- never a 500, never a hang -- and the server says so
once in its log, not once per request. When PostgreSQL is back the same
server process answers 200 again, every token a client received introspects
active, and every token whose revocation was answered 200 introspects inactive.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import httpx2
import pytest

from tests.faults.conftest import (
    CLIENT_TIMEOUT,
    Load,
    Outcome,
    PrivatePostgres,
    introspect_active,
    start_server,
    stop_server,
    token_request,
    wait_for,
)

pytestmark = pytest.mark.faults

OUTAGE = 4.0  # seconds PostgreSQL stays down


def test_postgres_outage_answers_503_then_recovers_without_restart(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    url = private_postgres.create_database("outage_" + secrets.token_hex(4))
    # The shipped client cache (5 s): token requests reach the token write, not
    # only the client lookup, while the database is down.
    server = start_server(tmp_path, url, extra_env={"KEYTURN_CLIENT_CACHE_TTL": "5"})
    try:
        client = server.create_client()
        auth = (client["client_id"], client["client_secret"])
        resource = server.create_client("--can-introspect")
        resource_auth = (resource["client_id"], resource["client_secret"])
        with httpx2.Client(timeout=CLIENT_TIMEOUT) as http:
            seed = token_request(http, server, auth).json()["access_token"]
            # Tokens to revoke under load: RFC 7009's write, on the driver.
            to_revoke = [
                token_request(http, server, auth).json()["access_token"] for _ in range(300)
            ]
        revocations: list[tuple[str, int]] = []
        lock = threading.Lock()

        def mixed(http: httpx2.Client) -> httpx2.Response:
            """Of eight requests, one introspection (a lookup by jti), one revocation
            (while tokens are left to revoke) and token requests."""
            pick = secrets.randbelow(8)
            if pick == 0:
                return http.post(
                    server.url + "/oauth/introspect", data={"token": seed}, auth=resource_auth
                )
            with lock:
                token = to_revoke.pop() if pick == 1 and to_revoke else None
            if token is None:
                return token_request(http, server, auth)
            r = http.post(server.url + "/oauth/revoke", data={"token": token}, auth=auth)
            with lock:
                revocations.append((token, r.status_code))
            return r

        with Load(mixed, workers=8, seconds=45) as load:
            load.wait_received(50, timeout=10)
            wait_for(lambda: any(status == 200 for _, status in revocations), timeout=10)
            private_postgres.stop("fast")
            down_at = time.monotonic()
            time.sleep(OUTAGE)
            up_from = time.monotonic()
            private_postgres.start()
            back_at = time.monotonic()
            recovered = wait_for(
                lambda: any(o.status == 200 and o.started > up_from for o in load.outcomes),
                timeout=30,
            )
        first_200 = min(
            (o.finished for o in load.outcomes if o.status == 200 and o.started > up_from),
            default=None,
        )
        during = [o for o in load.outcomes if o.started >= down_at and o.finished <= up_from]
        print(
            f"\nPostgreSQL outage of {OUTAGE:.0f} s: during it {dict(load.histogram(during))}; "
            f"whole run {dict(load.histogram())}; first 200 "
            f"{'never' if first_200 is None else f'{first_200 - back_at:+.2f} s'} "
            "from the moment pg_ctl start returned"
        )
        assert len(during) > 20, "the load went on during the outage"
        for o in during:
            assert_temporarily_unavailable(o)
        for o in load.outcomes:  # before, across and after the transitions
            assert o.status is not None, f"no answer within {CLIENT_TIMEOUT} s: {o.error}"
            assert o.status in (200, 503), (o.status, o.body)
            if o.status == 503:
                assert_temporarily_unavailable(o)
        assert recovered is not None, "no 200 within 30 s of PostgreSQL's restart"

        received = list(load.received)
        active = introspect_active(server, received, resource_auth)
        print(f"tokens received {len(received)}, introspect active {active}")
        assert active == len(received)
        # A revocation answered 200 holds (one answered 503 may or may not have).
        revoked = [token for token, status in revocations if status == 200]
        assert any(status == 503 for _, status in revocations), revocations[-20:]
        assert revoked, "no revocation was answered 200"
        with httpx2.Client(timeout=CLIENT_TIMEOUT) as http:  # and revocation works again
            late = token_request(http, server, auth).json()["access_token"]
            r = http.post(server.url + "/oauth/revoke", data={"token": late}, auth=auth)
            assert r.status_code == 200, r.text
        revoked.append(late)
        assert introspect_active(server, revoked, resource_auth) == 0
        # The recovery is noticed by the traffic that works, or else by the
        # server's own probe twice a second: give the log line that long.
        wait_for(lambda: "database available again" in server.log(), timeout=10)
    finally:
        stop_server(server)
    log = server.log()
    assert log.count("database unavailable") == 1, log[-3000:]
    assert log.count("database available again") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def assert_temporarily_unavailable(o: Outcome) -> None:
    assert o.status == 503, (o.status, o.error, o.body)
    assert o.retry_after is not None, o.body
    assert o.retry_after.isdigit(), o.retry_after
    assert isinstance(o.body, dict), o.body
    assert o.body.get("error") == "temporarily_unavailable", o.body
