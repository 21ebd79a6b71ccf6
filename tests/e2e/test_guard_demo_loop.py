"""The README's whole loop against real processes: Keyturn, the demo API, the SDK.

The SDK gets a token from a running ``keyturn serve``, calls the demo API (a
separate process protected by the guard), the token expires, the API answers
401 ``invalid_token``, the SDK obtains a new token and the replayed call
succeeds.

The SDK's clock is held still after the first call (`keyturn.testing.FakeClock`),
so it keeps presenting the token after it expired - the situation of a client
whose clock lags, or of any token the API refuses before the client expected.
Left to real time, the SDK renews ahead of expiry and the API never needs to
say 401, which is the point of the SDK but not what this test is about.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from keyturn.client import ClientCredentials, EventKind, OAuth2Auth, TokenEvent
from keyturn.testing import FakeClock
from tests.e2e.conftest import LiveServer, free_port

pytestmark = pytest.mark.e2e

DEMO = Path(__file__).parents[2] / "examples" / "demo_api.py"
LIFETIME = 2  # seconds: the token must expire while the test waits


@pytest.fixture
def demo_api(live_server: LiveServer, tmp_path: Path) -> Iterator[str]:
    """The demo API as its own process on a free loopback port, guarding with Keyturn's JWKS."""
    port = free_port()
    log_path = tmp_path / "demo_api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(DEMO), "--issuer", live_server.url, "--port", str(port),
             "--leeway", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"demo API exited early:\n{log_path.read_text()}")
            try:
                if httpx2.get(url + "/health", timeout=1).is_success:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"demo API did not become ready:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)
def test_expired_token_is_refused_then_renewed(live_server: LiveServer, demo_api: str) -> None:
    registered = live_server.create_client(
        "--name", "demo-loop", "--scope", "orders:read", "--lifetime", str(LIFETIME)
    )
    events: list[TokenEvent] = []
    auth = OAuth2Auth(
        ClientCredentials(
            client_id=registered["client_id"],
            client_secret=registered["client_secret"],
            token_url=live_server.token_url,
            scopes=("orders:read",),
        ),
        leeway=0,
        jitter=0,
        clock=FakeClock(start=time.time()),
        on_event=events.append,
    )
    with httpx2.Client(auth=auth, timeout=10) as api:
        # 1. The SDK fetches a token and the guard accepts it.
        first = api.get(demo_api + "/orders")
        assert first.status_code == 200, first.text
        assert first.json()["for"] == registered["client_id"]
        first_token = first.request.headers["authorization"]

        # 2. The token expires at the API.
        time.sleep(LIFETIME + 1)
        refused = httpx2.get(demo_api + "/orders", headers={"Authorization": first_token})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == (
            'Bearer realm="demo-api", error="invalid_token", '
            'error_description="The access token expired"'
        )

        # 3. Through the SDK: 401, a new token, the replayed call succeeds.
        second = api.get(demo_api + "/orders")
        assert second.status_code == 200, second.text
        assert second.request.headers["authorization"] != first_token

    kinds = [event.kind for event in events]
    assert kinds.count(EventKind.FETCH_SUCCEEDED) == 2
    assert EventKind.TOKEN_REJECTED in kinds
    assert kinds.index(EventKind.TOKEN_REJECTED) < len(kinds) - 1


@pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)
def test_missing_scope_is_403_over_http(live_server: LiveServer, demo_api: str) -> None:
    registered = live_server.create_client("--name", "no-orders", "--scope", "profile")
    token = httpx2.post(
        live_server.token_url,
        data={"grant_type": "client_credentials", "scope": "profile"},
        auth=(registered["client_id"], registered["client_secret"]),
    ).json()["access_token"]
    response = httpx2.get(demo_api + "/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert 'scope="orders:read"' in response.headers["www-authenticate"]
    me = httpx2.get(demo_api + "/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["client_id"] == registered["client_id"]
