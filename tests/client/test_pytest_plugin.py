"""The test helpers ship as a pytest plugin (issue 17, item 9): no conftest needed."""

from __future__ import annotations

import importlib.metadata

import httpx2

from keyturn.client import OAuth2Auth
from keyturn.testing import FakeClock, FakeTokenServer
from keyturn.testing.live import KeyturnServer


def test_registered_as_a_pytest11_entry_point() -> None:
    found = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "keyturn"]
    assert [e.value for e in found] == ["keyturn.testing.plugin"]


def test_fake_fixtures_share_one_clock(
    fake_clock: FakeClock, fake_token_server: FakeTokenServer
) -> None:
    assert fake_token_server.clock is fake_clock
    auth = OAuth2Auth(fake_token_server.client_credentials(), clock=fake_clock)
    with httpx2.Client(auth=auth, transport=fake_token_server.transport()) as api:
        api.get("https://api.example/things")
        fake_clock.advance(3600)
        api.get("https://api.example/things")
    assert fake_token_server.token_requests == 2


def test_keyturn_server_is_real(keyturn_server: KeyturnServer) -> None:
    assert keyturn_server.process.poll() is None
    assert keyturn_server.data_dir.is_dir()
    document = httpx2.get(keyturn_server.url + "/.well-known/oauth-authorization-server").json()
    assert document["issuer"] == keyturn_server.issuer
    client = keyturn_server.create_client("--scope", "read")
    token = httpx2.post(
        keyturn_server.token_url,
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert token.status_code == 200, token.text
