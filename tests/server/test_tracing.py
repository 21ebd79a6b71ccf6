"""OpenTelemetry spans: one per token request with its grant, client and outcome, and
child spans for signing and the token write; none while tracing is off; never a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from keyturn.server import tracing
from tests.server.conftest import Harness, make_settings, run_harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    yield from run_harness(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_token_request_span_with_sign_and_write_children(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    client_id, secret = harness.create_client()
    assert secret is not None
    r = harness.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]

    [request] = named(spans, "keyturn.token_request")
    assert dict(request.attributes or {}) == {
        "keyturn.grant_type": "client_credentials",
        "keyturn.client_id": client_id,
        "keyturn.outcome": "issued",
    }
    assert request.status.status_code == StatusCode.UNSET
    [sign] = named(spans, "keyturn.sign")
    [write] = named(spans, "keyturn.token_write")
    assert sign.attributes == {"keyturn.alg": "RS256"}
    assert write.attributes == {"keyturn.rows": 1}
    for child in (sign, write):
        assert child.parent is not None
        assert child.parent.span_id == request.context.span_id

    everything = repr([(s.name, dict(s.attributes or {})) for s in spans.get_finished_spans()])
    assert secret not in everything
    assert token not in everything
    assert token.rsplit(".", 1)[1] not in everything


def test_refused_requests_name_their_error_never_the_secret(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    client_id, _ = harness.create_client()
    wrong = "wrong-secret-0123456789"
    r = harness.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, wrong)
    )
    assert r.status_code == 401
    r = harness.http.post("/oauth/token", data={"grant_type": "nonsense"})
    assert r.status_code == 400

    refused, unsupported = named(spans, "keyturn.token_request")
    assert dict(refused.attributes or {}) == {
        "keyturn.grant_type": "client_credentials",
        "keyturn.outcome": "invalid_client",
    }
    assert refused.status.status_code == StatusCode.UNSET  # the client's error
    assert dict(unsupported.attributes or {}) == {"keyturn.outcome": "unsupported_grant_type"}
    assert not named(spans, "keyturn.sign")
    assert wrong not in repr([dict(s.attributes or {}) for s in spans.get_finished_spans()])


def test_no_span_while_tracing_is_off(harness: Harness) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    tracing.disable()
    client_id, secret = harness.create_client()
    assert secret is not None
    r = harness.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert r.status_code == 200
    assert not tracing.enabled()
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"KEYTURN_OTEL": "1"}, True),
        ({"KEYTURN_OTEL": "true", "OTEL_SDK_DISABLED": "true"}, False),
        ({"KEYTURN_OTEL": "1", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "KEYTURN_OTEL": "0"}, False),
    ],
)
def test_which_environment_turns_it_on(env: dict[str, str], on: bool) -> None:
    assert tracing.wanted(env) is on


def test_a_process_started_with_keyturn_otel_traces(tmp_path: Path) -> None:
    """The import-time set-up, in a new interpreter: a console exporter, one span."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYTURN_", "OTEL_"))}
    code = (
        "import asyncio\n"
        "from keyturn.server import tracing\n"
        "assert tracing.enabled()\n"
        "@tracing.traced('probe', attributes=lambda n: {'keyturn.n': n})\n"
        "async def probe(n):\n"
        "    return n\n"
        "asyncio.run(probe(7))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "KEYTURN_OTEL": "1", "OTEL_TRACES_EXPORTER": "console"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert '"name": "probe"' in run.stdout
    assert '"keyturn.n": 7' in run.stdout
    assert '"service.name": "keyturn"' in run.stdout
