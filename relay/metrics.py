"""What the relay tells Prometheus."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCHES = Counter("orders_relay_batches_total", "Batches claimed and settled")
PUBLISHED = Counter("orders_relay_events_published_total", "Events Kafka acknowledged", ["topic"])
FAILED = Counter("orders_relay_publish_failures_total", "Events Kafka did not take", ["parked"])
PUBLISH_LATENCY = Histogram(
    "orders_relay_publish_latency_seconds",
    "Per batch: from its oldest row's commit to Kafka's acknowledgement",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BATCH_SECONDS = Histogram(
    "orders_relay_batch_seconds",
    "Claim, publish and mark one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BACKLOG = Gauge("orders_outbox_backlog", "Unpublished outbox rows (parked included)")
OLDEST_AGE = Gauge("orders_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row")
SHARDS = Gauge("orders_relay_shards_owned", "Outbox shards this relay publishes")
SHARDS_LOST = Counter(
    "orders_relay_shards_lost_total",
    "Shards this relay stopped publishing: handed over, expired or taken over",
)
FENCED = Counter(
    "orders_relay_fenced_total",
    "Shards whose transactional producer found itself fenced by the shard's next owner",
)
