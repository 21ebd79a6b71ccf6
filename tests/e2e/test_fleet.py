"""A fleet as operators run it: two ``keyturn serve`` processes behind HAProxy.

Both processes share one PostgreSQL database and Redis (a private key prefix of
the shared instance, deleted after); HAProxy runs ``deploy/haproxy.cfg`` as
shipped. What a fleet must hold, each shown on the real processes:

1. the per-client rate limit counts requests to both backends;
2. a token issued by one verifies (JWKS) and introspects at the other;
3. a token revoked at one is inactive at the other at once, and a deny-list
   guard rejects it within ``KEYTURN_DENYLIST_SYNC_INTERVAL``;
4. a key rotated at one is published and signs at the other within
   ``KEYTURN_KEY_REFRESH_INTERVAL``;
5. a backend killed under load: HAProxy fails over, and only requests in
   flight on it fail;
6. a rolling restart under load: no request fails;
7. ``/metrics`` of both backends adds up to the tokens clients received;
8. behind the balancer, lockouts are per client address (X-Forwarded-For from
   HAProxy only), and the issuer never comes from request headers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt as pyjwt
import pytest

from keyturn.guard import TokenVerifier
from keyturn.guard.redis_denylist import RedisDenyList
from tests.conftest import TEST_PEPPER, _admin, database_name, redis_prefix
from tests.e2e.fleet import Backend, Balancer, alive, haproxy_binary, make_fleet, wait_for
from tests.faults.conftest import Load, Outcome, jti_of

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/0"
CC = "client_credentials"
KEY_REFRESH_INTERVAL = 1.0
DENYLIST_SYNC_INTERVAL = 1.0
DRAIN = 3.0
"""More than HAProxy's fall x inter (2 x 1 s) in deploy/haproxy.cfg."""
AUTH_FAILURE_LIMIT = 3
METADATA_PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


@dataclass
class Fleet:
    balancer: Balancer
    backends: list[Backend]
    prefix: str
    introspector: tuple[str, str]

    @property
    def url(self) -> str:
        return self.balancer.url

    def client(self, *args: str) -> dict[str, Any]:
        done = self.backends[0].cli("clients", "create", "--json", *args)
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def ensure_up(self) -> None:
        for backend in self.backends:
            if backend.process is None or backend.process.poll() is not None:
                backend.start()
            self.balancer.wait_state(backend.name, "UP")


def token(http: httpx2.Client, base: str, auth: tuple[str, str]) -> httpx2.Response:
    return http.post(base + "/oauth/token", data={"grant_type": CC}, auth=auth)


def introspect(base: str, tok: str, auth: tuple[str, str]) -> dict[str, Any]:
    r = httpx2.post(base + "/oauth/introspect", data={"token": tok}, auth=auth, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _redis_delete_prefix(prefix: str) -> int:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
        return int(await client.delete(*keys)) if keys else 0
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, postgres_database_url: str) -> Iterator[Fleet]:
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("HAProxy is not installed (apt-get install -y haproxy): no fleet test")
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")

    # Its own database: this module rotates keys, which others would see.
    name = database_name()
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    database_url = f"{postgres_database_url.rsplit('/', 1)[0]}/{name}"
    prefix = redis_prefix()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(
        KEYTURN_DATABASE_URL=database_url,
        KEYTURN_PEPPER=TEST_PEPPER,
        KEYTURN_REDIS_URL=REDIS_URL,
        KEYTURN_REDIS_PREFIX=prefix,
        KEYTURN_KEY_REFRESH_INTERVAL=str(KEY_REFRESH_INTERVAL),
        KEYTURN_DENYLIST_SYNC_INTERVAL=str(DENYLIST_SYNC_INTERVAL),
        KEYTURN_FORWARDED_ALLOW_IPS="127.0.0.1",  # HAProxy's address on loopback
        KEYTURN_SHUTDOWN_DRAIN=str(DRAIN),
        KEYTURN_AUTH_FAILURE_LIMIT=str(AUTH_FAILURE_LIMIT),
        KEYTURN_SIGN_PROCESSES="1",
        KEYTURN_CLIENT_CACHE_TTL="0",
    )
    tmp = tmp_path_factory.mktemp("fleet")
    balancer, backends = make_fleet(tmp, binary, env)
    try:
        for backend in backends:
            backend.start()
        balancer.start()
        introspector = backends[0].cli(
            "clients", "create", "--json", "--name", "rs", "--can-introspect", "--rate-limit", "0"
        )
        assert introspector.returncode == 0, introspector.stderr
        rs = json.loads(introspector.stdout)
        yield Fleet(balancer, backends, prefix, (rs["client_id"], rs["client_secret"]))
    finally:
        balancer.stop()
        for backend in backends:
            backend.stop()
        asyncio.run(_redis_delete_prefix(prefix))
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_shipped_haproxy_config_is_valid(fleet: Fleet) -> None:
    done = fleet.balancer.check_config()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Configuration file is valid" in done.stdout + done.stderr


def test_the_balancer_gives_each_request_an_id_the_backend_echoes(fleet: Fleet) -> None:
    r = httpx2.get(fleet.balancer.url + "/healthz", timeout=5)
    assert r.status_code == 200
    assert "_" in r.headers["x-request-id"]  # HAProxy's unique id (Keyturn's own is hex)
    mine = httpx2.get(fleet.balancer.url + "/healthz", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"  # a client's own id goes through


# -- 1. one rate limit -------------------------------------------------------------------
def test_rate_limit_counts_requests_to_both_backends(fleet: Fleet) -> None:
    fleet.ensure_up()
    client = fleet.client("--name", "limited", "--rate-limit", "6")
    auth = (client["client_id"], client["client_secret"])
    k1, k2 = fleet.backends
    with httpx2.Client(timeout=10) as http:
        # Six tokens, alternating between the two processes: one budget of six.
        statuses = [token(http, b.url, auth).status_code for b in (k1, k2) * 3]
        assert statuses == [200] * 6
        refused = [token(http, b.url, auth) for b in (k1, k2)]
        through_lb = token(http, fleet.url, auth)
    assert [r.status_code for r in refused] == [429, 429], [r.text for r in refused]
    assert all(r.json()["error"] == "slow_down" for r in refused)
    assert through_lb.status_code == 429, through_lb.text


# -- 2. and 3. one token, one revocation ---------------------------------------------------
def test_token_from_one_verifies_and_introspects_at_the_other_and_revocation_reaches_both(
    fleet: Fleet,
) -> None:
    fleet.ensure_up()
    client = fleet.client("--name", "api-caller", "--rate-limit", "0")
    auth = (client["client_id"], client["client_secret"])
    k1, k2 = fleet.backends
    with httpx2.Client(timeout=10) as http:
        r = token(http, k1.url, auth)
    assert r.status_code == 200, r.text
    access = r.json()["access_token"]
    jti = jti_of(access)

    # Verified with the keys the *other* process publishes, and its revocation list.
    denylist = RedisDenyList(REDIS_URL, prefix=fleet.prefix + "revoked:")
    verifier = TokenVerifier(
        fleet.url, fleet.url, jwks_uri=k2.url + "/.well-known/jwks.json", revocation=denylist
    )
    with verifier:
        claims = verifier.verify(access)
        assert claims.jwt_id == jti
        assert claims.issuer == fleet.url
        assert introspect(k2.url, access, fleet.introspector)["active"] is True

        revoked = httpx2.post(
            k1.url + "/oauth/revoke", data={"token": access}, auth=auth, timeout=10
        )
        assert revoked.status_code == 200, revoked.text
        # The database is shared: the other process knows at once.
        assert introspect(k2.url, access, fleet.introspector)["active"] is False

        def rejected() -> bool:
            try:
                verifier.verify(access)
            except Exception as exc:  # InvalidTokenError: revoked
                return "revoked" in str(exc)
            return False

        took = wait_for(rejected, timeout=DENYLIST_SYNC_INTERVAL + 4)
    print(f"\nrevocation at k1 -> the deny-list guard rejects it after {took:.3f}s")
    assert took is not None, "the guard never saw the revocation"
    assert took <= DENYLIST_SYNC_INTERVAL + 1.0, took  # the documented bound, and a margin


# -- 4. one key ring -----------------------------------------------------------------------
def test_key_rotated_at_one_is_published_and_used_by_the_other(fleet: Fleet) -> None:
    fleet.ensure_up()
    client = fleet.client("--name", "rotation", "--rate-limit", "0")
    auth = (client["client_id"], client["client_secret"])
    k1, k2 = fleet.backends
    done = k1.cli("keys", "rotate", "--delay", "0", "--json")
    assert done.returncode == 0, done.stderr
    kid = json.loads(done.stdout)["kid"]
    rotated = time.monotonic()

    def published_and_used(backend: Backend) -> bool:
        with httpx2.Client(timeout=10) as http:
            jwks = http.get(backend.url + "/.well-known/jwks.json").json()
            if kid not in {key["kid"] for key in jwks["keys"]}:
                return False
            r = token(http, backend.url, auth)
        assert r.status_code == 200, r.text
        return bool(pyjwt.get_unverified_header(r.json()["access_token"])["kid"] == kid)

    assert wait_for(lambda: published_and_used(k2), KEY_REFRESH_INTERVAL + 4) is not None
    took_k2 = time.monotonic() - rotated
    assert wait_for(lambda: published_and_used(k1), KEY_REFRESH_INTERVAL + 4) is not None
    print(f"\nkey {kid} rotated -> signing at k2 after {took_k2:.2f}s "
          f"(KEYTURN_KEY_REFRESH_INTERVAL={KEY_REFRESH_INTERVAL}s)")  # fmt: skip
    assert took_k2 <= KEY_REFRESH_INTERVAL + 1.5, took_k2


# -- 7. one count -------------------------------------------------------------------------
def issued_counts(fleet: Fleet) -> list[float]:
    """``keyturn_tokens_issued_total`` of each backend, summed over its labels."""
    from prometheus_client.parser import text_string_to_metric_families

    counts = []
    for backend in fleet.backends:
        r = httpx2.get(backend.url + "/metrics", timeout=10)
        assert r.status_code == 200, r.text
        counts.append(
            sum(
                sample.value
                for family in text_string_to_metric_families(r.text)
                for sample in family.samples
                if sample.name == "keyturn_tokens_issued_total"
            )
        )
    return counts


def test_metrics_of_both_backends_add_up_to_the_tokens_issued(fleet: Fleet) -> None:
    fleet.ensure_up()
    client = fleet.client("--name", "counted", "--rate-limit", "0")
    auth = (client["client_id"], client["client_secret"])
    before = issued_counts(fleet)
    with Load(lambda http: token(http, fleet.url, auth), workers=4, max_requests=400) as load:
        load.wait_received(400, timeout=60)
    after = issued_counts(fleet)
    per_backend = [a - b for a, b in zip(after, before, strict=True)]
    print(f"\n/metrics: {len(load.received)} tokens received, backends counted {per_backend}")
    assert load.histogram() == {"200": 400}
    assert sum(per_backend) == len(load.received) == 400
    assert all(n > 0 for n in per_backend), per_backend  # both served
    # Scraped per process; the balancer does not show them to clients.
    assert httpx2.get(fleet.url + "/metrics", timeout=10).status_code == 404


# -- 5. a backend dies -----------------------------------------------------------------------
def _fails(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status != 200]


def test_backend_killed_under_load_fails_only_requests_in_flight_on_it(fleet: Fleet) -> None:
    fleet.ensure_up()
    client = fleet.client("--name", "load-kill", "--rate-limit", "0")
    auth = (client["client_id"], client["client_secret"])
    k1, _ = fleet.backends
    with Load(lambda http: token(http, fleet.url, auth), workers=8, seconds=40) as load:
        load.wait_received(150, timeout=20)
        killed_at = time.monotonic()
        k1.kill()
        dead_at = time.monotonic()
        before = len(load.outcomes)
        assert wait_for(lambda: len(load.outcomes) >= before + 300, 25) is not None
        load.stop()
    fleet.balancer.wait_state("k1", "DOWN")
    outcomes = load.outcomes
    failed = _fails(outcomes)
    in_flight = [o for o in failed if o.started <= dead_at]
    after = [o for o in failed if o.started > dead_at]
    print(
        f"\nkill -9 of k1 under load: {len(outcomes)} requests, {len(failed)} failed "
        f"({load.histogram(failed)}), all {len(in_flight)} in flight when it died "
        f"(started before the kill returned; {sum(o.started < killed_at for o in in_flight)} "
        "before it was sent)"
    )
    assert not after, load.histogram(after)
    assert len(in_flight) <= 8  # at most one per load thread
    assert sum(o.status == 200 for o in outcomes if o.started > dead_at) >= 300
    k1.start()
    fleet.balancer.wait_state("k1", "UP")


# -- 6. rolling restart --------------------------------------------------------------------
def test_rolling_restart_under_load_fails_no_request(fleet: Fleet) -> None:
    fleet.ensure_up()
    client = fleet.client("--name", "load-roll", "--rate-limit", "0")
    auth = (client["client_id"], client["client_secret"])
    seen_draining = []
    with Load(lambda http: token(http, fleet.url, auth), workers=8, seconds=90) as load:
        load.wait_received(100, timeout=20)
        for backend in fleet.backends:
            helpers = list(backend.helpers)
            assert helpers, "no signing helper to stop"
            backend.terminate()
            # Draining: /readyz 503 while it still serves, until HAProxy takes it out.
            assert (
                wait_for(
                    lambda b=backend: httpx2.get(b.url + "/readyz", timeout=2).status_code == 503,
                    DRAIN,
                )
                is not None
            )
            seen_draining.append(backend.name)
            fleet.balancer.wait_state(backend.name, "DOWN", timeout=DRAIN + 5)
            assert backend.wait(timeout=DRAIN + 40) in (0, -15), backend.log()[-2000:]
            assert wait_for(lambda h=helpers: not any(alive(p) for p in h), 10) is not None
            backend.start()
            fleet.balancer.wait_state(backend.name, "UP")
        done = len(load.received)
        load.wait_received(done + 100, timeout=20)
        load.stop()
    failed = _fails(load.outcomes)
    print(
        f"\nrolling restart of {seen_draining} under load: {len(load.outcomes)} requests, "
        f"{len(failed)} failed {dict(load.histogram(failed))}"
    )
    assert seen_draining == ["k1", "k2"]
    assert not failed, load.histogram(failed)


# -- 7. the client's address, the issuer's name ---------------------------------------------
def test_lockouts_behind_the_balancer_are_per_client_address(fleet: Fleet) -> None:
    fleet.ensure_up()
    client = fleet.client("--name", "lockout", "--rate-limit", "0")
    good = (client["client_id"], client["client_secret"])
    bad = (client["client_id"], "kts_wrong")

    def post(source: str, auth: tuple[str, str], **headers: str) -> httpx2.Response:
        transport = httpx2.HTTPTransport(local_address=source)
        with httpx2.Client(transport=transport, timeout=10) as http:
            return http.post(
                fleet.url + "/oauth/token", data={"grant_type": CC}, auth=auth, headers=headers
            )

    # Connections from 127.0.0.2 fail until that address is locked out for this client.
    fails = [post("127.0.0.2", bad).status_code for _ in range(AUTH_FAILURE_LIMIT)]
    assert fails == [401] * AUTH_FAILURE_LIMIT
    locked = post("127.0.0.2", good)
    assert locked.status_code == 429, locked.text
    # Naming another address in X-Forwarded-For does not get out of it: HAProxy
    # appends the real one, and that is the one Keyturn takes.
    spoofed = post("127.0.0.2", good, **{"X-Forwarded-For": "127.0.0.3"})
    assert spoofed.status_code == 429, spoofed.text
    # Another client address, through the same balancer, is not locked out.
    other = post("127.0.0.3", good)
    assert other.status_code == 200, other.text


def test_issuer_never_comes_from_request_headers(fleet: Fleet) -> None:
    fleet.ensure_up()
    client = fleet.client("--name", "issuer", "--rate-limit", "0")
    auth = (client["client_id"], client["client_secret"])
    forged = {
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "Forwarded": "host=evil.example;proto=https",
    }
    with httpx2.Client(timeout=10, headers=forged) as http:
        for path in (
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ):
            meta = http.get(fleet.url + path).json()
            assert meta["issuer"] == fleet.url
            assert all(
                "evil" not in str(v) and not str(v).startswith("https") for v in meta.values()
            )
        r = token(http, fleet.url, auth)
    assert r.status_code == 200, r.text
    assert (
        pyjwt.decode(r.json()["access_token"], options={"verify_signature": False})["iss"]
        == fleet.url
    )


def test_deploy_files_reference_settings_that_exist() -> None:
    """The unit and env example name only real settings (a typo would be silently ignored)."""
    from keyturn.server.settings import Settings

    root = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
    known = {f"KEYTURN_{name.upper()}" for name in Settings.model_fields}
    known |= {"KEYTURN_LISTEN_HOST"}  # the unit's own: --host
    for path in root.iterdir():
        for name in re.findall(r"KEYTURN_[A-Z_]+", path.read_text()):
            assert name in known, f"{path.name}: {name} is not a setting"
