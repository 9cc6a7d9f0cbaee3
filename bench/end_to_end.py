"""End to end: from the API's commit to the consumer's status change, read from the database.

`orders.created_at` is the API transaction's start (`now()`), and the `confirmed` history
row's `changed_at` is the consumer transaction's start, so the difference covers the API's
insert and commit, the relay's wake-up and publish, Kafka, and the consumer's poll.
"""

from __future__ import annotations

import msgspec
import numpy as np

from bench.relay_drain import unpublished
from bench.stack import Sql
from bench.ui import wait_counting

COUNTS = """
SELECT count(*),
       count(*) FILTER (WHERE o.status <> 'pending'),
       count(*) FILTER (WHERE o.status = 'confirmed')
  FROM orders o
 WHERE o.metadata->>'run' = %s
"""

# Per order: the whole way, the part up to the relay marking its event published (after
# Kafka's acknowledgement), and the rest (the consumer may start before the mark: < 0 then).
LATENCIES = """
SELECT extract(epoch FROM h.changed_at - o.created_at) * 1000,
       extract(epoch FROM x.published_at - o.created_at) * 1000,
       extract(epoch FROM h.changed_at - x.published_at) * 1000
  FROM orders o
  JOIN order_status_history h ON h.order_id = o.id AND h.to_status = 'confirmed'
  JOIN outbox x ON x.subject = o.id::text AND x.event_type = 'order.created'
 WHERE o.metadata->>'run' = %s
"""


class EndToEnd(msgspec.Struct):
    offered_rate: int
    seconds: int
    orders: int  # created by the run
    confirmed: int  # of them, confirmed by the consumer before the bench stopped waiting
    # None when no order of the run was confirmed
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    relay_p50_ms: float | None  # API transaction start → the relay marked the event published
    relay_p99_ms: float | None
    consumer_p50_ms: float | None  # marked published → the consumer's transaction start
    consumer_p99_ms: float | None


def _counts(conn: Sql, run: str) -> tuple[int, int, int]:
    """How many orders the run made, how many left `pending`, how many are `confirmed`."""
    row = conn.execute(COUNTS, (run,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def wait_settled(conn: Sql, run: str, timeout: float) -> bool:
    """Wait until every order of `run` has left `pending` (or `timeout` passes)."""
    total, _, _ = _counts(conn, run)

    def pending() -> int:
        created, moved, _ = _counts(conn, run)
        return created - moved

    return wait_counting(
        f"waiting for {run}'s orders to be confirmed", pending, total, timeout=timeout
    )


def wait_published(conn: Sql, timeout: float) -> bool:
    """Wait until the outbox holds nothing unpublished (or `timeout` passes)."""
    left = unpublished(conn)
    return wait_counting(
        "waiting for the outbox to empty", lambda: unpublished(conn), left, timeout=timeout
    )


def measure(conn: Sql, run: str, rate: int, seconds: int) -> tuple[EndToEnd, np.ndarray]:
    total, _, confirmed = _counts(conn, run)
    rows = np.array(conn.execute(LATENCIES, (run,)).fetchall(), dtype=float).reshape(-1, 3)
    whole, relay, consumer = rows[:, 0], rows[:, 1], rows[:, 2]
    return EndToEnd(
        offered_rate=rate,
        seconds=seconds,
        orders=total,
        confirmed=confirmed,
        p50_ms=_percentile(whole, 50),
        p95_ms=_percentile(whole, 95),
        p99_ms=_percentile(whole, 99),
        max_ms=_percentile(whole, 100),
        relay_p50_ms=_percentile(relay, 50),
        relay_p99_ms=_percentile(relay, 99),
        consumer_p50_ms=_percentile(consumer, 50),
        consumer_p99_ms=_percentile(consumer, 99),
    ), whole


def _percentile(values: np.ndarray, percent: float) -> float | None:
    return round(float(np.percentile(values, percent)), 1) if len(values) else None
