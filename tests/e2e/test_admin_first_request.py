"""The admin API of a just-started server process: built on its first requests,
which are answered even when two arrive together (issue 18, target 7)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx2

from tests.e2e.conftest import start_server, stop_server


def test_two_concurrent_first_admin_requests_are_answered(tmp_path: Path) -> None:
    server = start_server(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}")
    try:
        admin = server.create_client("--name", "ops", "--scope", "keyturn:admin")
        r = httpx2.post(
            server.token_url,
            data={"grant_type": "client_credentials"},
            auth=(admin["client_id"], admin["client_secret"]),
        )
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

        def list_clients() -> httpx2.Response:
            return httpx2.get(server.url + "/admin/v1/clients", headers=headers, timeout=30)

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: list_clients(), range(2)))
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        for answer in answers:
            assert [c["client_id"] for c in answer.json()] == [admin["client_id"]]
        document = httpx2.get(server.url + "/admin/v1/openapi.json").json()
        assert "/tokens" in document["paths"]
    finally:
        stop_server(server)
    assert "Traceback" not in server.log()
