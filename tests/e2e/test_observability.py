"""One trace from request to status change; metrics on every process; logs that carry ids."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from scripts.stack.paths import free_port
from scripts.stack.waiting import wait_for
from tests.support import kcat
from tests.support.pipeline import SEED_ORDER, Pipeline, Topics
from tests.support.servers import KafkaServer, PostgresServer, api_alone, running


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class Collector(ThreadingHTTPServer):
    """Just enough of an OTLP/HTTP collector: keeps every span it is sent."""

    spans: list[ReceivedSpan]


class _Handler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
        for resource_spans in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.server.spans.append(
                        ReceivedSpan(
                            service,
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                        )
                    )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector(("127.0.0.1", free_port()), _Handler)
    server.spans = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def traced_pipeline(
    database_url: str,
    postgres: PostgresServer,
    kafka: KafkaServer,
    topics: Topics,
    tmp_path: Path,
    collector: Collector,
) -> Iterator[Pipeline]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
        "RELAY_METRICS_PORT": str(free_port()),
        "CONSUMER_METRICS_PORT": str(free_port()),
    }
    with running(postgres, database_url, kafka, topics, tmp_path / "logs", extra_env=env) as found:
        yield found


def test_one_trace_from_request_to_status_change(
    traced_pipeline: Pipeline, collector: Collector, kafka: KafkaServer, topics: Topics
) -> None:
    trace_id, client_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    with traced_pipeline.client() as client:
        response = client.post(
            "/api/v1/orders",
            json=SEED_ORDER,
            headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
        )
    order_id = response.json()["order"]["id"]
    traced_pipeline.wait_for_status(order_id, "confirmed")

    def whole_trace() -> list[ReceivedSpan] | None:
        spans = [s for s in collector.spans if s.trace_id == trace_id]
        names = {(s.service, s.name) for s in spans}
        wanted = {
            ("orders-api", "POST /api/v1/orders"),
            ("orders-relay", f"publish {topics.orders}"),
            ("orders-consumer", "process order.created"),
        }
        return (
            spans
            if wanted <= names and len([s for s in spans if s.service == "orders-relay"]) >= 2
            else None
        )

    spans = wait_for(whole_trace, timeout=30, what="api, relay and consumer spans in one trace")
    by_name = {(s.service, s.name): s for s in spans}
    api = by_name["orders-api", "POST /api/v1/orders"]
    consume = by_name["orders-consumer", "process order.created"]
    publishes = [s for s in spans if s.service == "orders-relay"]
    assert api.parent_id == client_span  # the caller's trace continues
    assert any(p.parent_id == api.span_id for p in publishes)  # publish follows the request
    assert any(consume.parent_id == p.span_id for p in publishes)  # consume follows the publish
    assert any(
        p.parent_id == consume.span_id for p in publishes
    )  # order.confirmed follows the consume

    records = [
        r
        for r in kcat.read_all(kafka.client_config(), topics.orders)
        if r.headers.get("ce_subject") == order_id
    ]
    assert records and all(trace_id in r.headers["traceparent"] for r in records)


def test_every_process_serves_metrics(traced_pipeline: Pipeline) -> None:
    with traced_pipeline.client() as client:
        order_id = client.post("/api/v1/orders", json=SEED_ORDER).json()["order"]["id"]
        client.get("/api/v1/orders/does-not-exist")
    traced_pipeline.wait_for_status(order_id, "confirmed")
    relay_url = f"http://127.0.0.1:{traced_pipeline.env['RELAY_METRICS_PORT']}/metrics"
    consumer_url = f"http://127.0.0.1:{traced_pipeline.env['CONSUMER_METRICS_PORT']}/metrics"

    def scraped() -> tuple[str, str, str] | None:
        api = httpx.get(traced_pipeline.metrics_url).text
        relay = httpx.get(relay_url).text
        consumer = httpx.get(consumer_url).text
        published = sample(relay, "orders_relay_events_published_total")
        ready = published >= 2 and "orders_consumer_lag{" in consumer  # lag: every 5 s
        return (api, relay, consumer) if ready else None

    api, relay, consumer = wait_for(scraped, timeout=30, what="metrics to show the order")
    assert (
        sample(api, 'orders_http_requests_total{method="POST",route="/api/v1/orders",status="201"}')
        == 1
    )
    assert (
        sample(
            api, 'orders_http_requests_total{method="GET",route="/api/v1/orders/{order_id:uuid}"'
        )
        == 0
    )
    assert (
        sample(api, 'orders_http_requests_total{method="GET",route="unmatched",status="404"}') == 1
    )
    assert sample(api, "orders_http_request_duration_seconds_count") >= 2
    assert sample(relay, "orders_relay_publish_latency_seconds_count") >= 2
    assert sample(relay, "orders_relay_shards_owned") == 32
    assert (
        sample(consumer, 'orders_consumer_events_total{result="applied",type="order.created"}') == 1
    )
    assert sample(consumer, "orders_consumer_processing_seconds_count") >= 1
    assert sample(consumer, "orders_consumer_lag{") >= 0


def test_logs_are_json_lines_that_carry_the_request_id(running_pipeline: Pipeline) -> None:
    with running_pipeline.client() as client:
        order_id = client.post(
            "/api/v1/orders", json=SEED_ORDER, headers={"X-Request-ID": "trace-me-1"}
        ).json()["order"]["id"]
    running_pipeline.wait_for_status(order_id, "confirmed")
    applied = wait_for(
        lambda: [
            line
            for line in running_pipeline.log_lines("consumer")
            if line["message"] == "event applied"
        ],
        timeout=10,
        what="the consumer's log line",
    )
    created = [
        line for line in running_pipeline.log_lines("api") if line["message"] == "order created"
    ]
    assert [(line["order_id"], line["correlation_id"]) for line in created] == [
        (order_id, "trace-me-1")
    ]
    assert applied[0]["correlation_id"] == "trace-me-1"
    assert applied[0]["order_id"] == order_id
    assert applied[0]["level"] == "info" and applied[0]["time"].endswith("+00:00")


def test_api_metrics_add_up_across_workers(
    module_database_url: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    with (
        api_alone(postgres, module_database_url, tmp_path, {"HTTP_WORKERS": "2"}) as api,
        api.client() as client,
    ):
        for _ in range(40):  # spread over both workers by the kernel
            assert client.get("/health/live", headers={"Connection": "close"}).status_code == 200
        text = httpx.get(api.metrics_url).text  # the API's metrics port, not its own
    assert (
        sample(text, 'orders_http_requests_total{method="GET",route="/health/live",status="200"}')
        == 40
    )


def sample(text: str, prefix: str) -> float:
    """The sum of every sample whose name and labels start with `prefix`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(prefix) and not line.startswith("#"):
            total += float(re.split(r"\s+", line.strip())[-1])
    return total
