"""``/metrics`` of a real ``keyturn serve --workers 2``: one view, whichever worker answers.

The workers write their values to a private ``PROMETHEUS_MULTIPROC_DIR`` that
``serve`` makes (in ``TMPDIR``, pointed here at the test's directory so the
test can see it made and removed); once the workers have flushed (each second),
every scrape must show exactly the tokens issued, though each worker issued
only some of them.
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import LiveServer, free_port, start_server, stop_server

CC = "client_credentials"
TOKENS = 40
SCRAPES = 8


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}"


def issue(server: LiveServer, client_id: str, secret: str, count: int) -> list[str]:
    def one(_: int) -> str:
        # A connection per request, several at once: both workers take some.
        r = httpx2.post(server.token_url, data={"grant_type": CC}, auth=(client_id, secret))
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def samples(text: str) -> dict[str, float]:
    """Sample name with sorted labels -> value, e.g. ``x_total{a="b"}``."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def issued(text: str) -> float:
    return sum(v for k, v in samples(text).items() if k.startswith("keyturn_tokens_issued_total{"))


def issued_per_process(shared: Path) -> dict[str, float]:
    """Tokens issued by each worker, from its own file (the split is the kernel's choice)."""
    from prometheus_client.mmap_dict import MmapedDict

    split: dict[str, float] = {}
    for path in shared.glob("counter_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if key.startswith('["keyturn_tokens_issued"'):
                split[path.stem] = split.get(path.stem, 0.0) + value
    return split


def scrape_until_issued(url: str, count: int) -> str:
    """The first scrape counting ``count`` tokens: each worker writes its counts to the
    shared view every second (server/metrics.py, FLUSH_INTERVAL), so allow a few."""
    deadline = time.monotonic() + 15
    while True:
        r = httpx2.get(url)
        assert r.status_code == 200
        if issued(r.text) == count or time.monotonic() > deadline:
            return r.text
        time.sleep(0.2)


def private_dirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("keyturn-metrics-*"))


def test_two_workers_report_one_consistent_view(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    server = start_server(
        tmp_path, sqlite_url(tmp_path), "--workers", "2", extra_env={"TMPDIR": str(scratch)}
    )
    try:
        (shared,) = private_dirs(scratch)
        assert shared.stat().st_mode & 0o777 == 0o700
        client = server.create_client("--scope", "read")
        secret = client["client_secret"]
        tokens = issue(server, client["client_id"], secret, TOKENS)
        texts = [scrape_until_issued(server.url + "/metrics", TOKENS)]
        for _ in range(SCRAPES):  # a new connection each: either worker may answer
            r = httpx2.get(server.url + "/metrics")
            assert r.status_code == 200
            assert r.headers["cache-control"] == "no-store"
            texts.append(r.text)
        split = issued_per_process(shared)
        assert sum(split.values()) == TOKENS, split  # what each worker wrote
    finally:
        stop_server(server)
    for text in texts:
        assert issued(text) == TOKENS, text
        values = samples(text)
        assert any(k.startswith("keyturn_request_duration_seconds_bucket{") for k in values)
        assert any(k.startswith("keyturn_signing_seconds_bucket{") for k in values)
        assert values["keyturn_token_write_batch_size_sum{}"] == TOKENS
        assert secret not in text
        assert not any(t in text or t.split(".")[1] in text for t in tokens)
    assert private_dirs(scratch) == []  # removed on exit


def test_metrics_on_their_own_port(tmp_path: Path) -> None:
    metrics_port = free_port()
    server = start_server(
        tmp_path,
        sqlite_url(tmp_path),
        "--workers",
        "2",
        extra_env={"KEYTURN_METRICS_PORT": str(metrics_port)},
    )
    try:
        client = server.create_client("--scope", "read")
        issue(server, client["client_id"], client["client_secret"], 5)
        assert httpx2.get(server.url + "/metrics").status_code == 404
        assert httpx2.get(server.url + "/readyz").status_code == 200
        scrape_until_issued(f"http://127.0.0.1:{metrics_port}/metrics", 5)
        for _ in range(3):
            r = httpx2.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert r.status_code == 200
            assert issued(r.text) == 5
            # Sampled by each worker for scrapes it does not answer: keys, database.
            assert "keyturn_signing_key_state{" in r.text
            assert 'keyturn_dependency_up{dependency="database"} 1.0' in r.text
    finally:
        stop_server(server)


def test_one_worker_with_a_metrics_port(tmp_path: Path) -> None:
    metrics_port = free_port()
    server = start_server(
        tmp_path, sqlite_url(tmp_path), extra_env={"KEYTURN_METRICS_PORT": str(metrics_port)}
    )
    try:
        client = server.create_client("--scope", "read")
        issue(server, client["client_id"], client["client_secret"], 3)
        assert httpx2.get(server.url + "/metrics").status_code == 404
        text = scrape_until_issued(f"http://127.0.0.1:{metrics_port}/metrics", 3)
        assert issued(text) == 3
    finally:
        stop_server(server)
