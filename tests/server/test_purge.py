"""token_service.purge: every dead row goes, batch by batch, with a rest between batches.

The rest is what keeps a large purge from stalling token requests
(benchmarks/table_growth.py measures that); here it is only counted, through a
stand-in for ``anyio`` in token_service alone, so the test waits for nothing.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from keyturn.server import token_service
from keyturn.storage.records import TOKEN_KIND_ACCESS, TokenRecord
from keyturn.storage.repository import TokenFilter
from tests.server.conftest import Harness, make_settings, run_harness

RUN = secrets.token_hex(4)


def record(n: int, client_id: str, issued_at: int, lifetime: int) -> TokenRecord:
    return TokenRecord(
        token_id=f"purge-{RUN}-{client_id[:8]}-{n:04d}",
        token_hash=secrets.token_hex(32),
        kind=TOKEN_KIND_ACCESS,
        client_id=client_id,
        subject=client_id,
        scope="read",
        audience=["https://api.example.test"],
        grant_type="client_credentials",
        issued_at=issued_at,
        expires_at=issued_at + lifetime,
        kid="k1",
    )


@pytest.fixture
def server(tmp_path: Path, own_database_url: str) -> Iterator[Harness]:
    # A database of its own: a purge deletes every dead row, other tests' too.
    # The server's own purge loop waits an hour: only the test's purge runs.
    settings = make_settings(
        tmp_path, own_database_url, purge_retention=3600, purge_batch=10, purge_interval=3600
    )
    yield from run_harness(settings)


@pytest.mark.parametrize(
    ("max_batches", "purged", "rests", "complete"), [(None, 28, 2, True), (2, 20, 1, False)]
)
def test_purge_deletes_dead_rows_in_batches_and_rests_between_them(
    server: Harness,
    monkeypatch: pytest.MonkeyPatch,
    max_batches: int | None,
    purged: int,
    rests: int,
    complete: bool,
) -> None:
    ctx = server.ctx
    cid, _ = server.create_client()
    now = int(time.time())
    dead = [record(n, cid, now - 4 * 3600, 60) for n in range(25)]
    # Revoked before the retention, expiring after it: they go too.
    revoked = [record(300 + n, cid, now - 4 * 3600, 8 * 3600) for n in range(3)]
    live = [record(100 + n, cid, now, 3600) for n in range(3)]
    recent = [record(200 + n, cid, now - 600, 60) for n in range(2)]  # within the retention
    revoked_lately = [record(400 + n, cid, now - 4 * 3600, 8 * 3600) for n in range(2)]
    server.call(ctx.storage.record_tokens, dead + revoked + live + recent + revoked_lately)
    for r in revoked:
        server.call(ctx.storage.revoke_token, r.token_id, now - 2 * 3600)
    for r in revoked_lately:
        server.call(ctx.storage.revoke_token, r.token_id, now - 600)

    slept: list[float] = []

    async def rest(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(token_service, "anyio", SimpleNamespace(sleep=rest))

    async def purge() -> token_service.Purged:
        return await token_service.purge(ctx, max_batches=max_batches)

    assert server.call(purge) == token_service.Purged(purged, complete)
    # A rest after each full batch but the last, never after the final one.
    assert len(slept) == rests
    assert all(s >= 0 for s in slept)

    async def remaining() -> set[str]:
        rows = await ctx.storage.list_tokens(TokenFilter(client_id=cid), now, 100)
        return {r.token_id for r in rows}

    left = server.call(remaining)
    kept = {r.token_id for r in live + recent + revoked_lately}
    assert kept <= left
    assert len(left - kept) == 28 - purged
    if max_batches is None:
        assert left == kept


def test_the_admin_purge_stops_once_its_server_drains(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM lets the purge end its batch and answer, so it does not hold the
    shutdown; ``complete: false`` says more is left."""
    from keyturn.server import lifecycle

    ctx = server.ctx
    cid, _ = server.create_client()
    admin_id, admin_secret = server.create_client(scopes=["keyturn:admin"])
    now = int(time.time())
    server.call(ctx.storage.record_tokens, [record(n, cid, now - 4 * 3600, 60) for n in range(35)])
    token = server.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": admin_id,
              "client_secret": admin_secret},
    ).json()["access_token"]  # fmt: skip
    draining = threading.Event()
    monkeypatch.setattr(lifecycle, "_draining", draining)
    rested: list[float] = []

    async def rest(seconds: float) -> None:  # SIGTERM arrives during the first rest
        rested.append(seconds)
        if len(rested) == 1:
            draining.set()

    monkeypatch.setattr(token_service, "anyio", SimpleNamespace(sleep=rest))
    headers = {"Authorization": f"Bearer {token}"}
    r = server.http.post("/admin/v1/tokens/purge", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"purged": 10, "complete": False}  # one batch of 10, then it stopped
    assert len(rested) == 1
    draining.clear()  # another server, say, not shutting down: it purges the rest
    r = server.http.post("/admin/v1/tokens/purge", headers=headers)
    assert r.json() == {"purged": 25, "complete": True}
    assert len(rested) == 3
