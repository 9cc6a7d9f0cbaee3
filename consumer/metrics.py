"""What the consumer tells Prometheus."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "orders_consumer_events_total",
    "Events read, by type and what became of them (applied, duplicate, rejected, ignored)",
    ["type", "result"],
)
PROCESSING = Histogram(
    "orders_consumer_processing_seconds",
    "Time to apply one event, retries included",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
DEAD_LETTERS = Counter("orders_consumer_dead_letters_total", "Messages sent to the DLQ", ["reason"])
LAG = Gauge("orders_consumer_lag", "Messages behind the partition's end", ["topic", "partition"])
