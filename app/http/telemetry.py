"""Per-request metrics and spans (served on their own port: `python -m app`).

A plain ASGI middleware: the route label is Litestar's path template (so
`/api/v1/orders/{order_id}` is one series, not one per order), and the span
continues the caller's `traceparent` when it sent one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram

from app import telemetry

REQUESTS = Counter(
    "orders_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "orders_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
UNMATCHED = "unmatched"  # 404s: one series, whatever the path


def telemetry_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if telemetry.tracing_enabled():
                await _traced(app, scope, receive, observe, lambda: status)
            else:  # the caller's traceparent still reaches the outbox (origin_of)
                await app(scope, receive, observe)
        finally:
            route = scope.get("path_template") or UNMATCHED
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)

    return middleware


async def _traced(
    app: ASGIApp, scope: HTTPScope, receive: Receive, send: Send, status: Callable[[], int]
) -> None:
    """The request as a server span, continuing the caller's trace if it sent one."""
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    with telemetry.span(
        f"{scope['method']} {scope['path']}", parent=headers, kind=SpanKind.SERVER
    ) as span:
        try:
            await app(scope, receive, send)
        finally:
            span.update_name(f"{scope['method']} {scope.get('path_template') or UNMATCHED}")
            span.set_attribute("http.response.status_code", status())
            if status() >= 500:
                span.set_status(Status(StatusCode.ERROR))
