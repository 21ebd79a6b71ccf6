"""Zero-downtime client-secret rotation in process: the service, the admin API, verification."""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from keyturn.core.errors import InvalidRequestError
from keyturn.server import client_auth, client_service, token_service
from keyturn.server.clients import ClientCache, NewClient
from keyturn.server.secrets import generate_client_secret
from keyturn.storage.records import AUTH_POST
from tests.server.conftest import Harness, make_settings, run_harness
from tests.server.test_lockout import CountingStorage

CC = "client_credentials"
ADMIN = "keyturn:admin"


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Harness]:
    yield from run_harness(make_settings(tmp_path, database_url, secret_rotation_overlap=600))


def token_status(server: Harness, cid: str, secret: str | None) -> int:
    form = {"grant_type": CC, "client_id": cid, "client_secret": secret}
    status: int = server.http.post("/oauth/token", data=form).status_code
    return status


def create(server: Harness, **options: Any) -> NewClient:
    new: NewClient = server.call(lambda: client_service.create(server.ctx, **options))
    return new


def rotate(server: Harness, cid: str, overlap: int | None = None) -> NewClient:
    new: NewClient = server.call(
        lambda: client_service.rotate_secret(server.ctx, cid, overlap=overlap)
    )
    return new


def move_clock(server: Harness, seconds: float) -> None:
    base = time.time()
    server.ctx.clock = lambda: base + seconds


def set_clock(server: Harness, at: float) -> None:
    """The server's clock at ``at``: exact, however slowly the test itself runs."""
    server.ctx.clock = lambda: at


def test_both_secrets_work_until_the_overlap_ends(server: Harness) -> None:
    old = create(server)
    cid = old.client.client_id
    new = rotate(server, cid)  # KEYTURN_SECRET_ROTATION_OVERLAP: 600 here
    assert new.secret not in (None, old.secret)
    made, expires = new.client.secret_created_at, new.client.previous_secret_expires_at
    assert made is not None
    assert expires == made + 600
    assert token_status(server, cid, old.secret) == 200
    assert token_status(server, cid, new.secret) == 200
    set_clock(server, made + 599)
    assert token_status(server, cid, old.secret) == 200
    set_clock(server, made + 601)
    assert token_status(server, cid, old.secret) == 401
    assert token_status(server, cid, new.secret) == 200


def test_overlap_per_call_and_zero_stops_the_old_secret_at_once(server: Harness) -> None:
    old = create(server)
    cid = old.client.client_id
    new = rotate(server, cid, overlap=0)
    assert new.client.secrets_dict(time.time()) == [
        {"label": "current", "created_at": new.client.secret_created_at, "expires_at": None}
    ]
    assert token_status(server, cid, old.secret) == 401
    assert token_status(server, cid, new.secret) == 200
    later = rotate(server, cid, overlap=30)
    assert later.client.secret_created_at is not None
    assert later.client.previous_secret_expires_at == later.client.secret_created_at + 30
    with pytest.raises(InvalidRequestError, match=r"0 .* or more seconds"):
        rotate(server, cid, overlap=-1)


def test_a_second_rotation_drops_the_first_secret(server: Harness) -> None:
    first = create(server)
    cid = first.client.client_id
    second = rotate(server, cid)
    third = rotate(server, cid)
    assert token_status(server, cid, first.secret) == 401
    assert token_status(server, cid, second.secret) == 200
    assert token_status(server, cid, third.secret) == 200


def test_the_overlap_can_be_ended_early(server: Harness) -> None:
    old = create(server)
    cid = old.client.client_id
    new = rotate(server, cid)
    assert token_status(server, cid, old.secret) == 200
    ended = server.call(client_service.expire_previous_secret, server.ctx, cid)
    assert [s["label"] for s in ended.secrets_dict(time.time())] == ["current"]
    assert token_status(server, cid, old.secret) == 401
    assert token_status(server, cid, new.secret) == 200
    # Idempotent; unknown and public clients are told why.
    server.call(client_service.expire_previous_secret, server.ctx, cid)
    with pytest.raises(token_service.NotFoundError):
        server.call(client_service.expire_previous_secret, server.ctx, "nobody")
    public = create(
        server,
        public=True,
        grant_types=["authorization_code"],
        redirect_uris=["https://app.example/cb"],
    )
    with pytest.raises(InvalidRequestError, match="public client has no secret"):
        server.call(client_service.expire_previous_secret, server.ctx, public.client.client_id)


def test_every_secret_check_runs_two_comparisons(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown client, one secret, mid-rotation, an expired previous one: the same work."""
    old = create(server)
    cid = old.client.client_id
    single = server.call(server.ctx.storage.get_client, cid)
    new = rotate(server, cid)
    rotating = new.client
    expired = rotating.with_changes(previous_secret_expires_at=int(time.time()) - 1)
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(client_auth.hmac, "compare_digest", counting)
    request = Request({"type": "http", "headers": []})
    cases = [
        (None, "x", False),
        (single, old.secret, True),
        (single, "wrong", False),
        (rotating, old.secret, True),
        (rotating, new.secret, True),
        (rotating, generate_client_secret(), False),
        (expired, old.secret, False),
        (expired, new.secret, True),
    ]
    for client, secret, expected in cases:
        calls.clear()
        creds = client_auth.extract_credentials(
            request, {"client_id": cid, "client_secret": secret or ""}
        )
        assert creds.method == AUTH_POST
        assert client_auth._accepts(server.ctx, client, creds) is expected
        assert len(calls) == 2, (client, expected)


def test_a_failure_mid_rotation_costs_one_database_read(server: Harness) -> None:
    old = create(server)
    cid = old.client.client_id
    new = rotate(server, cid)
    storage = CountingStorage(server.ctx.storage)
    server.ctx.clients = ClientCache(storage, ttl=60)  # type: ignore[arg-type]

    def reads(secret: str | None) -> int:
        before = storage.lookups
        token_status(server, cid, secret)
        return storage.lookups - before

    assert reads(new.secret) == 1  # first sight
    assert [reads(old.secret), reads(new.secret)] == [0, 0]  # both from the cache
    assert [reads("wrong") for _ in range(3)] == [1, 1, 1]


def test_a_rotation_elsewhere_reaches_a_process_with_the_old_record_cached(
    tmp_path: Path, database_url: str
) -> None:
    """Two processes on one database, each caching clients for 5 minutes: a rotation
    in one must not lock the new secret out of the other."""
    settings_a = make_settings(tmp_path / "a", database_url, client_cache_ttl=300)
    settings_b = make_settings(tmp_path / "b", database_url, client_cache_ttl=300)
    for a in run_harness(settings_a):
        for b in run_harness(settings_b):
            old = create(a)
            cid = old.client.client_id
            assert token_status(a, cid, old.secret) == 200
            assert token_status(b, cid, old.secret) == 200  # b caches the one-secret record
            new = rotate(a, cid, overlap=120)
            # b's cached record knows only the old secret: the new one fails there,
            # the failure reloads the record, and the new secret is accepted.
            assert token_status(b, cid, new.secret) == 200
            assert token_status(b, cid, old.secret) == 200  # the overlap, seen by b
            assert token_status(a, cid, new.secret) == 200
            assert token_status(a, cid, old.secret) == 200
            move_clock(b, 121)
            assert token_status(b, cid, old.secret) == 401  # expired in the cached record
            assert token_status(b, cid, new.secret) == 200


# -- the admin API -------------------------------------------------------------------


def admin_headers(server: Harness) -> dict[str, str]:
    cid, secret = server.create_client(scopes=[ADMIN])
    form = {"grant_type": CC, "client_id": cid, "client_secret": secret, "scope": ADMIN}
    token = server.http.post("/oauth/token", data=form).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_admin_rotation_with_an_overlap_and_its_early_end(server: Harness) -> None:
    headers = admin_headers(server)
    old = create(server, client_id="svc-rot")
    url = "/admin/v1/clients/svc-rot"
    r = server.http.post(url + "/rotate-secret", json={"overlap": 45}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    new_secret = body["client_secret"]
    current, previous = body["client"]["secrets"]
    assert current == {"label": "current", "created_at": current["created_at"], "expires_at": None}
    assert previous["label"] == "previous"
    assert previous["created_at"] == old.client.secret_created_at
    assert previous["expires_at"] == current["created_at"] + 45
    assert token_status(server, "svc-rot", old.secret) == 200
    assert token_status(server, "svc-rot", new_secret) == 200
    listed = server.http.get("/admin/v1/clients", headers=headers).json()
    shown = next(c for c in listed if c["client_id"] == "svc-rot")
    assert shown["secrets"] == [current, previous]
    assert server.http.get(url, headers=headers).json()["secrets"] == [current, previous]

    r = server.http.delete(url + "/previous-secret", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["secrets"] == [current]
    assert token_status(server, "svc-rot", old.secret) == 401
    assert token_status(server, "svc-rot", new_secret) == 200
    # No body, or an empty one, takes the configured overlap.
    for kwargs in ({}, {"json": {}}):
        r = server.http.post(url + "/rotate-secret", headers=headers, **kwargs)
        assert r.status_code == 200, r.text
        current, previous = r.json()["client"]["secrets"]
        assert previous["expires_at"] == current["created_at"] + 600


@pytest.mark.parametrize(
    "body",
    [
        {"overlap": -1},
        {"overlap": "60"},
        {"overlap": True},
        {"overlap": 60.5},
        {"overlap": 10**12},
        {"overlap": 60, "extra": 1},
        [60],
    ],
)
def test_admin_rotation_refuses_a_bad_overlap(server: Harness, body: Any) -> None:
    headers = admin_headers(server)
    old = create(server)
    cid = old.client.client_id
    r = server.http.post(f"/admin/v1/clients/{cid}/rotate-secret", json=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert token_status(server, cid, old.secret) == 200  # nothing was rotated


def test_admin_previous_secret_errors(server: Harness) -> None:
    headers = admin_headers(server)
    r = server.http.delete("/admin/v1/clients/nobody/previous-secret", headers=headers)
    assert r.status_code == 404
    assert r.json()["error"] == "invalid_request"
    public = create(
        server,
        public=True,
        grant_types=["authorization_code"],
        redirect_uris=["https://app.example/cb"],
    )
    r = server.http.delete(
        f"/admin/v1/clients/{public.client.client_id}/previous-secret", headers=headers
    )
    assert r.status_code == 400
    r = server.http.post(
        f"/admin/v1/clients/{public.client.client_id}/rotate-secret", headers=headers
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
