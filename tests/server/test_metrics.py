"""``/metrics`` on the in-process app: every metric moves when its event happens.

Metrics are per process and the test process serves many apps, so each test
compares two scrapes (before, after) of the real ``/metrics`` text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keyturn.server import metrics
from keyturn.server.app import purge_once
from tests.e2e.conftest import free_port
from tests.server.conftest import Harness, make_settings, run_harness

CC = "client_credentials"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: Harness) -> Samples:
    r = server.http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["cache-control"] == "no-store"
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def token(server: Harness, cid: str, secret: str | None) -> Any:
    data = {"grant_type": CC, "client_id": cid, "client_secret": secret, "scope": "read"}
    return server.http.post("/oauth/token", data=data)


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[Harness]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"
    yield from run_harness(make_settings(tmp_path, url, signing_alg="ES256"))


def test_only_keyturn_metrics_and_no_secrets(sqlite_server: Harness) -> None:
    cid, secret = sqlite_server.create_client()
    r = token(sqlite_server, cid, secret)
    assert r.status_code == 200
    text = sqlite_server.http.get("/metrics").text
    names = {f.name for f in text_string_to_metric_families(text)}
    assert names, text
    assert all(name.startswith("keyturn_") for name in names), names  # no python_info
    assert secret is not None
    assert secret not in text
    assert r.json()["access_token"] not in text
    assert r.json()["access_token"].split(".")[1] not in text


def test_issued_tokens_signing_and_writes_are_counted(server: Harness) -> None:
    cid, secret = server.create_client()
    alg = server.ctx.settings.signing_alg
    before = scrape(server)
    for _ in range(5):
        assert token(server, cid, secret).status_code == 200
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("keyturn_tokens_issued_total", grant_type=CC, alg=alg) == 5
    assert delta("keyturn_signing_seconds_count", alg=alg) == 5
    # Every record is in exactly one batch: the batch sizes add up to the tokens.
    assert delta("keyturn_token_write_batch_size_sum") == 5
    assert 1 <= delta("keyturn_token_write_batch_size_count") <= 5
    assert delta("keyturn_token_write_seconds_count") == delta(
        "keyturn_token_write_batch_size_count"
    )
    assert delta("keyturn_request_duration_seconds_count", route="/oauth/token", status="200") == 5
    assert value(after, "keyturn_dependency_up", dependency="database") == 1


def test_token_errors_by_rfc_code(sqlite_server: Harness) -> None:
    cid, _secret = sqlite_server.create_client()
    before = scrape(sqlite_server)
    assert token(sqlite_server, cid, "wrong").status_code == 401
    r = sqlite_server.http.post("/oauth/token", data={"grant_type": "nope"})
    assert r.json()["error"] == "unsupported_grant_type"
    r = sqlite_server.http.post("/oauth/token", data={})
    assert r.json()["error"] == "invalid_request"
    after = scrape(sqlite_server)
    for error in ("invalid_client", "unsupported_grant_type", "invalid_request"):
        name = "keyturn_token_errors_total"
        assert value(after, name, error=error) - value(before, name, error=error) == 1, error
    failures = "keyturn_auth_failures_total"
    assert value(after, failures, kind="client") - value(before, failures, kind="client") == 1


def test_429s_by_reason(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"
    settings = make_settings(
        tmp_path, url, signing_alg="ES256", auth_failure_limit=2, auth_failure_address_limit=4
    )
    name = "keyturn_rate_limited_total"
    for server in run_harness(settings):
        limited, secret = server.create_client(rate_limit=1)
        locked, _ = server.create_client()
        other, _ = server.create_client()
        before = scrape(server)
        assert token(server, limited, secret).status_code == 200
        assert token(server, limited, secret).status_code == 429  # issuance
        for _ in range(2):
            assert token(server, locked, "wrong").status_code == 401
        assert token(server, locked, "wrong").status_code == 429  # lockout of that id
        for _ in range(2):
            assert token(server, other, "wrong").status_code == 401
        # Four failures from this address: every client id is throttled now.
        assert token(server, limited, secret).status_code == 429  # address
        after = scrape(server)
        for reason in ("issuance", "lockout", "address"):
            got = value(after, name, reason=reason) - value(before, name, reason=reason)
            assert got == 1, reason


def test_latency_routes_are_fixed_names(sqlite_server: Harness) -> None:
    before = scrape(sqlite_server)
    for path in ("/nope/1", "/nope/2", "/admin/v1/clients/x/y/z", "/healthz"):
        sqlite_server.http.get(path)
    after = scrape(sqlite_server)
    routes = {dict(ls).get("route") for (n, ls) in after if n.startswith("keyturn_request_")}
    assert not any(r and r.startswith("/nope") for r in routes), routes
    count = "keyturn_request_duration_seconds_count"
    assert (
        value(after, count, route="other", status="404")
        - value(before, count, route="other", status="404")
        == 2
    )
    assert total(after, count, route="/admin/v1") - total(before, count, route="/admin/v1") == 1
    assert (
        value(after, count, route="/healthz", status="200")
        - value(before, count, route="/healthz", status="200")
        == 1
    )


def test_routes_with_path_parameters_count_under_their_template(
    sqlite_server: Harness,
) -> None:
    """A vendor route such as Square's renew names a client in its path: its
    requests count under the route's template, not as ``other``, and never
    under the raw path."""
    renew = "/oauth2/clients/{client_id}/access-token/renew"
    delete = "/api/{service_id}/auth/token/delete/{identifier}"
    before = scrape(sqlite_server)
    for client_id in ("a", "b"):
        sqlite_server.http.post(f"/oauth2/clients/{client_id}/access-token/renew", json={})
    sqlite_server.http.delete("/api/svc-1/auth/token/delete/tok-1")
    sqlite_server.http.delete("/api/auth/token/delete/tok-2")
    after = scrape(sqlite_server)
    count = "keyturn_request_duration_seconds_count"
    routes = {dict(ls).get("route") for (n, ls) in after if n == count}
    assert not any(r and ("/a/" in r or "svc-1" in r or "tok-" in r) for r in routes), routes
    assert total(after, count, route=renew) - total(before, count, route=renew) == 2
    assert total(after, count, route=delete) - total(before, count, route=delete) == 1
    no_service = "/api/auth/token/delete/{identifier}"
    assert total(after, count, route=no_service) - total(before, count, route=no_service) == 1
    assert total(after, count, route="other") == total(before, count, route="other")


def test_per_client_counts_are_capped(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"
    settings = make_settings(tmp_path, url, signing_alg="ES256", metrics_per_client=2)
    name = "keyturn_client_tokens_issued_total"
    try:
        for server in run_harness(settings):
            clients = [server.create_client() for _ in range(4)]
            before = scrape(server)
            for cid, secret in clients:
                assert token(server, cid, secret).status_code == 200
            assert token(server, *clients[0]).status_code == 200
            after = scrape(server)
            first, second, third, fourth = (cid for cid, _ in clients)
            assert value(after, name, client_id=first) == 2
            assert value(after, name, client_id=second) == 1
            for cid in (third, fourth):
                assert (name, frozenset({("client_id", cid)})) not in after
            other = value(after, name, client_id="other") - value(before, name, client_id="other")
            assert other == 2
    finally:
        metrics.configure(make_settings(tmp_path, url))  # off again for later tests


def test_per_client_counts_are_off_by_default(sqlite_server: Harness) -> None:
    cid, secret = sqlite_server.create_client()
    assert token(sqlite_server, cid, secret).status_code == 200
    after = scrape(sqlite_server)
    assert ("keyturn_client_tokens_issued_total", frozenset({("client_id", cid)})) not in after


def test_key_states_and_ages(sqlite_server: Harness) -> None:
    ctx = sqlite_server.ctx
    active = ctx.keyring.loaded_statuses()[0]
    pending = sqlite_server.call(lambda: ctx.keyring.rotate(delay=3600))
    after = scrape(sqlite_server)
    state = "keyturn_signing_key_state"
    for status, expected in ((active, "active"), (pending, "pending")):
        for s in metrics.KEY_STATES:
            labels = {"kid": status.kid, "alg": status.alg, "state": s}
            assert value(after, state, **labels) == (1 if s == expected else 0), (status, s)
        age = value(after, "keyturn_signing_key_age_seconds", kid=status.kid, alg=status.alg)
        assert 0 <= age <= time.time() - status.created_at + 1


def test_purged_rows_are_counted(tmp_path: Path) -> None:
    """One round of the purge loop that every process runs (app.purge_forever)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"
    settings = make_settings(
        tmp_path, url, signing_alg="ES256", purge_retention=0, purge_interval=3600
    )
    name = "keyturn_tokens_purged_total"
    for server in run_harness(settings):
        cid, secret = server.create_client()
        before = value(scrape(server), name)
        for _ in range(3):
            access = token(server, cid, secret).json()["access_token"]
            data = {"token": access, "client_id": cid, "client_secret": secret}
            assert server.http.post("/oauth/revoke", data=data).status_code == 200
        time.sleep(1.1)  # retention 0: dead once a second has passed (whole seconds)
        removed = server.call(purge_once, server.ctx)
        assert value(scrape(server), name) - before == removed >= 3


def test_redis_down_and_denylist_backlog(tmp_path: Path) -> None:
    """Redis configured where nothing listens: down, and revocations wait to be published."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(
        tmp_path, url, signing_alg="ES256", redis_url=redis_url, denylist_sync_interval=0.05
    )
    for server in run_harness(settings):
        cid, secret = server.create_client()
        access = token(server, cid, secret).json()["access_token"]
        data = {"token": access, "client_id": cid, "client_secret": secret}
        assert server.http.post("/oauth/revoke", data=data).status_code == 200
        deadline = time.monotonic() + 20
        samples = scrape(server)
        while value(samples, "keyturn_denylist_backlog") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
            samples = scrape(server)
        assert value(samples, "keyturn_denylist_backlog") == 1
        assert value(samples, "keyturn_dependency_up", dependency="redis") == 0
        assert ("keyturn_denylist_lag_seconds", frozenset()) in samples
        assert redis_url not in server.http.get("/metrics").text


def test_metrics_port_setting_takes_metrics_off_the_main_app(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"
    settings = make_settings(tmp_path, url, signing_alg="ES256", metrics_port=free_port())
    for server in run_harness(settings):
        assert server.http.get("/metrics").status_code == 404
        assert server.http.get("/readyz").status_code == 200


def test_buffered_observations_land_in_the_same_buckets_as_direct_ones() -> None:
    """`LocalHistogram` + `flush` expose what ``observe`` one by one would."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    buckets = (0.001, 0.01, 0.1, 1.0)
    observations = [0.0, 0.0005, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.99, 1.0, 1.5, 7.0, 0.001]
    direct_registry, buffered_registry = CollectorRegistry(), CollectorRegistry()
    direct = Histogram("x_seconds", "x", ["route"], buckets=buckets, registry=direct_registry)
    buffered = Histogram("x_seconds", "x", ["route"], buckets=buckets, registry=buffered_registry)
    local = metrics.LocalHistogram(buffered.labels("/a"))
    for amount in observations:
        direct.labels("/a").observe(amount)
        local.observe(amount)
    assert buffered_registry.get_sample_value("x_seconds_count", {"route": "/a"}) == 0
    local.flush()
    local.flush()  # nothing pending: no change

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        return [line for line in text.splitlines() if not line.startswith("x_seconds_created")]

    assert lines(buffered_registry) == lines(direct_registry)

    counted = Counter("y", "y", registry=buffered_registry)
    pending = metrics.LocalCounter(counted)
    for _ in range(7):
        pending.inc()
    assert buffered_registry.get_sample_value("y_total") == 0
    metrics.flush()  # the module's flush reaches every local buffer
    assert buffered_registry.get_sample_value("y_total") == 7


def test_no_redis_series_without_redis(sqlite_server: Harness) -> None:
    """Without Redis, sampling makes no Redis series (one would read 0: down)."""
    if ("keyturn_dependency_up", frozenset({("dependency", "redis")})) in scrape(sqlite_server):
        metrics.DEPENDENCY_UP.remove("redis")  # an earlier app of this test process had one
    after = scrape(sqlite_server)
    assert ("keyturn_dependency_up", frozenset({("dependency", "redis")})) not in after
