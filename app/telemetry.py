"""Tracing and metrics plumbing shared by the three processes.

Tracing is OpenTelemetry, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; the
W3C `traceparent` travels with each change either way (request header → outbox
row → Kafka header → consumer), so a trace is whole once any exporter is on. What a
caller sends is held to the W3C format and size (https://www.w3.org/TR/trace-context/)
before it is stored or forwarded: an invalid one is dropped, as the spec asks, never an
error; `tracestate` means nothing without a valid `traceparent`, and goes with it.
Metrics are Prometheus: the API serves /metrics (multi-worker safe through
prometheus_client's multiprocess mode), the relay and consumer a small port.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind

log = logging.getLogger("app.telemetry")

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_enabled = False


def setup_tracing(service: str, endpoint: str | None) -> None:
    """Export spans over OTLP/HTTP to `endpoint`; without one, tracing stays a no-op."""
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    global _enabled  # noqa: PLW0603 - set once, at start, before anything reads it
    _enabled = True
    log.info("tracing enabled", extra={"endpoint": endpoint, "service": service})


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()  # flushes what is still batched


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def context_from(carrier: Mapping[str, str]) -> Context:
    """The trace context a `traceparent` (and `tracestate`) header carries."""
    return propagate.extract(dict(carrier))


# version 00 exactly; later versions may append fields, which we cannot vouch for.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
_KEY = r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(rf"{_KEY}={_VALUE}")
MAX_TRACESTATE = 512
MAX_MEMBERS = 32


def valid_traceparent(values: list[str]) -> str | None:
    """The one `traceparent` sent, if it is well formed."""
    if len(values) != 1 or not _TRACEPARENT.fullmatch(values[0].strip()):
        return None
    return values[0].strip()


def valid_tracestate(values: list[str]) -> str | None:
    """`tracestate` (possibly split over several headers), if every member is well formed."""
    joined = ",".join(values)
    if not joined or len(joined) > MAX_TRACESTATE:
        return None
    members = [member.strip(" \t") for member in joined.split(",")]
    members = [member for member in members if member]  # empty members are allowed
    if not members or len(members) > MAX_MEMBERS:
        return None
    if not all(_MEMBER.fullmatch(member) for member in members):
        return None
    return ",".join(members)


def current_traceparent() -> tuple[str | None, str | None]:
    """(traceparent, tracestate) of the active span, for storing with an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate")


@contextmanager
def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[Span]:
    """A span as the current one, continuing the trace in `parent`'s headers if given."""
    context = context_from(parent) if parent else None
    with tracer("orders").start_as_current_span(
        name, context=context, kind=kind, attributes=dict(attributes or {})
    ) as current:
        yield current


def tracing_enabled() -> bool:
    """Cheap to ask per message: a flag set once by setup_tracing."""
    return _enabled


def prepare_multiprocess_metrics(directory: str) -> None:
    """Before any worker starts: one directory of metric files shared by all workers."""
    os.makedirs(directory, exist_ok=True)
    for stale in os.listdir(directory):
        os.remove(os.path.join(directory, stale))
    os.environ[MULTIPROCESS_ENV] = directory


def serve_metrics(host: str, port: int, *, multiprocess: bool = False) -> None:
    """Expose this process's metrics on `host:port` (port 0: not at all); with
    `multiprocess`, those every worker wrote to PROMETHEUS_MULTIPROC_DIR, merged."""
    if port:
        from prometheus_client import (  # noqa: PLC0415
            REGISTRY,
            CollectorRegistry,
            start_http_server,
        )
        from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

        registry = REGISTRY
        if multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, addr=host, registry=registry)
        log.info("metrics served", extra={"host": host, "port": port})
