"""A rotated key is published at once (issue 17, item 12), on a real server.

``keyturn keys rotate`` runs in its own process; the serving process keeps its
signing keys cached for ``KEYTURN_KEY_REFRESH_INTERVAL`` (30 s by default), yet
its JWKS, PEM and metadata show the new key on the very next request, as the
README says.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("rotation")
    # A long refresh interval: only publication that reads afresh can pass.
    live = start_server(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'keyturn.db'}",
        extra_env={"KEYTURN_KEY_REFRESH_INTERVAL": "3600"},
    )
    yield live
    stop_server(live)


def test_the_next_jwks_request_after_a_rotation_shows_the_new_key(server: LiveServer) -> None:
    before = httpx2.get(server.url + "/.well-known/jwks.json").json()
    done = server.cli("keys", "rotate", "--alg", "ES256", "--json")
    assert done.returncode == 0, done.stderr
    kid = json.loads(done.stdout)["kid"]
    after = httpx2.get(server.url + "/.well-known/jwks.json").json()
    assert kid not in {k["kid"] for k in before["keys"]}
    assert kid in {k["kid"] for k in after["keys"]}
    pem = httpx2.get(server.url + "/oauth/public-key.pem", params={"kid": kid})
    assert pem.status_code == 200
    assert "BEGIN PUBLIC KEY" in pem.text
    meta = httpx2.get(server.url + "/.well-known/oauth-authorization-server").json()
    assert meta["access_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    # Published, but it signs only after the activation delay (an hour by default).
    client = server.create_client()
    r = httpx2.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    header = r.json()["access_token"].split(".")[0]
    assert json.loads(_b64(header))["alg"] == "RS256"


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
