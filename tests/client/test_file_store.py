"""FileTokenStore: atomic 0600 files, and one token request for four processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from keyturn.client import ClientCredentials, OAuthToken, TokenManager
from keyturn.client.stores.file import FileTokenStore
from keyturn.testing import FakeClock, FakeTokenServer
from tests.client.conftest import API

PROCESSES = 4


def test_round_trip_permissions_and_atomic_replace(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    assert stat.S_IMODE((tmp_path / "tokens").stat().st_mode) == 0o700
    token = OAuthToken(access_token="a", refresh_token="r", expires_at=1.0, extra={"x": 1})
    store.save("k1", token)
    path = tmp_path / "tokens" / "k1.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.load("k1") == token
    store.save("k1", token.clone_with(access_token="b"))
    assert json.loads(path.read_text())["access_token"] == "b"
    assert [p.name for p in (tmp_path / "tokens").iterdir()] == ["k1.json"]  # no temp files
    assert store.load("missing") is None


def test_corrupt_file_reads_as_empty_and_cas_clear(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path)
    (tmp_path / "k.json").write_text("{not json")
    assert store.load("k") is None
    store.save("k", OAuthToken(access_token="new", refresh_token="r2"))
    assert not store.clear("k", OAuthToken(access_token="old", refresh_token="r1"))
    assert store.clear("k", OAuthToken(access_token="new", refresh_token="r2"))
    assert store.load("k") is None
    with pytest.raises(ValueError, match="store keys"):
        store.load("../etc/passwd")


def test_lock_excludes_other_threads(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path)
    inside = threading.Event()
    order: list[str] = []

    def other() -> None:
        with store.lock("k"):
            order.append("other")

    with store.lock("k"):
        thread = threading.Thread(target=other)
        thread.start()
        inside.wait(0.2)  # give the other thread a chance to (wrongly) get in
        order.append("first")
    thread.join(10)
    assert order == ["first", "other"]


def test_manager_with_file_store_survives_a_restart(
    tmp_path: Path, clock: FakeClock, server: FakeTokenServer
) -> None:
    def manager() -> TokenManager:
        return TokenManager(
            server.client_credentials(),
            store=FileTokenStore(tmp_path),
            clock=clock,
            http_client=httpx2.Client(transport=server.transport()),
        )

    with manager() as first:
        first.get_token()
    with manager() as second, httpx2.Client(auth=second.auth(), transport=server.transport()) as c:
        assert c.get(API).status_code == 200
    assert server.token_requests == 1


@pytest.mark.anyio
async def test_file_store_with_async_client(
    tmp_path: Path, clock: FakeClock, server: FakeTokenServer
) -> None:
    manager = TokenManager(server.client_credentials(), store=FileTokenStore(tmp_path), clock=clock)
    async with httpx2.AsyncClient(auth=manager.auth(), transport=server.transport()) as client:
        assert (await client.get(API)).status_code == 200
    assert FileTokenStore(tmp_path).load(manager.core.store_key) is not None


class _CountingHandler(BaseHTTPRequestHandler):
    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with _CountingHandler.lock:
            _CountingHandler.count += 1
            n = _CountingHandler.count
        time.sleep(0.3)  # a slow token endpoint, so the processes really overlap
        body = json.dumps({"access_token": f"tok-{n}", "token_type": "Bearer", "expires_in": 600})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _process_main(token_url: str, directory: str, barrier: Any, results: Any) -> None:
    creds = ClientCredentials(client_id="c", client_secret="s", token_url=token_url)
    with TokenManager(creds, store=FileTokenStore(directory)) as manager:
        barrier.wait(timeout=30)
        results.put((os.getpid(), manager.get_token().access_token))


def test_four_processes_share_one_token_request(tmp_path: Path) -> None:
    _CountingHandler.count = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        token_url = f"http://127.0.0.1:{httpd.server_address[1]}/oauth/token"
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(PROCESSES)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_process_main, args=(token_url, str(tmp_path), barrier, results))
            for _ in range(PROCESSES)
        ]
        for proc in procs:
            proc.start()
        got = [results.get(timeout=60) for _ in range(PROCESSES)]
        for proc in procs:
            proc.join(timeout=30)
            assert proc.exitcode == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
    assert len({pid for pid, _ in got}) == PROCESSES
    assert {token for _, token in got} == {"tok-1"}
    assert _CountingHandler.count == 1
