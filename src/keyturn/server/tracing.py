"""OpenTelemetry spans for the token endpoint, token writes and signing (the ``otel`` extra).

Off unless configured, and then free: the hooks (`traced`, `annotate`) look at
one module global and call straight through when it is None, which it stays
when tracing is off or the extra (``pip install "keyturn[otel]"``) is missing.

On when, in the environment of the server process:

- ``KEYTURN_OTEL=1`` (``true``, ``yes``, ``on``); ``KEYTURN_OTEL=0`` keeps it off
  whatever else is set; or, with ``KEYTURN_OTEL`` unset,
- the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set,

and ``OTEL_SDK_DISABLED`` is not ``true`` and ``OTEL_TRACES_EXPORTER`` is not
``none``. Spans then go through a batch processor to an OTLP exporter
(``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf``, the default, or ``grpc``),
or to the console with ``OTEL_TRACES_EXPORTER=console``; the exporters read the
other standard ``OTEL_*`` variables (endpoint, headers, timeout) themselves.
``service.name`` is ``keyturn`` unless ``OTEL_SERVICE_NAME`` says otherwise. A
tracer provider someone already installed (``opentelemetry-instrument``) is used
as it is.

Spans carry no secret: the token span has ``keyturn.grant_type``,
``keyturn.client_id`` and ``keyturn.outcome`` (``issued`` or the RFC 6749 error
code); a failure's status names the exception's type, never its message
(database errors quote parameters).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = logging.getLogger("keyturn.server")

P = ParamSpec("P")
R = TypeVar("R")
AttributesOf = Callable[..., dict[str, Any]]

_tracer: Tracer | None = None
"""The tracer while tracing is on; None (the hooks' only check) while it is off."""

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether ``env`` asks for tracing (see the module docstring)."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return False
    own = env.get("KEYTURN_OTEL", "").strip().lower()
    if own in TRUE:
        return True
    if own in FALSE:
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def enabled() -> bool:
    return _tracer is not None


def enable(provider: TracerProvider | None = None) -> None:
    """Trace from now on, through ``provider`` (tests) or the global one."""
    global _tracer
    from opentelemetry import trace

    _tracer = (provider or trace.get_tracer_provider()).get_tracer("keyturn")


def disable() -> None:
    global _tracer
    _tracer = None


def configure_from_environment() -> None:
    """Turn tracing on if the environment asks for it and the ``otel`` extra is installed."""
    if not wanted():
        return
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning(
            "tracing is configured but OpenTelemetry is not installed; "
            'pip install "keyturn[otel]" (tracing stays off)'
        )
        return
    if isinstance(trace.get_tracer_provider(), TracerProvider):  # someone set one up
        enable()
        return
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "keyturn"}
    provider = TracerProvider(resource=Resource.create(attributes))
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")[0].strip().lower()
    exporter: Any
    if kind == "console":
        exporter = ConsoleSpanExporter()
    else:
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        )
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    enable(provider)


def traced(
    name: str, *, attributes: AttributesOf | None = None, success: str | None = None
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Run the decorated coroutine function in a span ``name`` while tracing is on.

    ``attributes(*args, **kwargs)`` gives the span's first attributes; with
    ``success``, the span's ``keyturn.outcome`` is that on return, and the
    RFC 6749 error code when an `OAuthError` is raised.
    """

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            tracer = _tracer
            if tracer is None:
                return await fn(*args, **kwargs)
            first = attributes(*args, **kwargs) if attributes is not None else None
            # Exceptions are described below, by type only: their messages may quote data.
            with tracer.start_as_current_span(
                name, attributes=first, record_exception=False, set_status_on_exception=False
            ) as span:
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    _failed(span, exc, success is not None)
                    raise
                if success is not None:
                    span.set_attribute("keyturn.outcome", success)
                return result

        return run

    return decorate


def _failed(span: Any, exc: Exception, with_outcome: bool) -> None:
    from opentelemetry.trace import Status, StatusCode

    from keyturn.core.errors import OAuthError

    if isinstance(exc, OAuthError):
        if with_outcome:
            span.set_attribute("keyturn.outcome", exc.error)
        if exc.status_code < 500:  # the client's error, not the server's
            return
    elif with_outcome:
        span.set_attribute("keyturn.outcome", "server_error")
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def annotate(**attributes: str | int) -> None:
    """Add ``keyturn.NAME`` attributes to the current span (nothing while tracing is off)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    for key, value in attributes.items():
        span.set_attribute(f"keyturn.{key}", value)


configure_from_environment()
