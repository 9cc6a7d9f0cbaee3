"""Relay drain: a backlog of outbox rows written straight into the table, then timed out.

The rows are `order.created` events exactly as the API writes them (payload bytes, CloudEvents
headers), built by the app's own code for a template order and copied in SQL with fresh ids,
spread over a given number of customers (the key: 10,000, 1,000, 100 or 1), on a topic nobody
consumes. The rate is taken from the
outbox's own timestamps: rows marked after the relay's first batch, over the time from that
first mark to the last (start-up and the first batch's round trip excluded).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from psycopg.types.json import Jsonb

from app.domain import examples
from app.domain.events import EventType, order_created
from app.domain.origin import Origin
from app.events.cloudevents import to_outbox
from app.events.message import OutboxMessage
from bench.stack import Sql
from bench.ui import step, wait_counting
from scripts.stack.waiting import wait_for

KEY_COUNTS = (10_000, 1_000, 100, 1)  # customers (Kafka keys) a backlog is spread over
FILL_BATCH = 2_000  # rows per transaction: each row's key takes an advisory lock until commit
PLACEHOLDER_ORDER = uuid.UUID("00000000-0000-4000-8000-000000000001")
PLACEHOLDER_CUSTOMER = uuid.UUID("00000000-0000-4000-8000-000000000002")
PLACEHOLDER_EVENT = uuid.UUID("00000000-0000-4000-8000-000000000003")

Record = tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]  # key, value, headers

FILL = """
INSERT INTO outbox (id, topic, key, event_type, subject, payload, headers)
SELECT ids.event_id, %(topic)s, ids.customer::text, %(event_type)s, ids.order_id::text,
       replace(replace(%(payload)s, %(p_order)s, ids.order_id::text),
               %(p_customer)s, ids.customer::text)::json,
       replace(replace(%(headers)s::text, %(p_event)s, ids.event_id::text),
               %(p_order)s, ids.order_id::text)::jsonb
  FROM (SELECT gen_random_uuid() AS event_id, gen_random_uuid() AS order_id,
               md5((g %% %(customers)s::int)::text)::uuid AS customer
          FROM generate_series(%(first)s::int, %(last)s::int) g) ids
"""


class Drain(msgspec.Struct):
    rows: int
    keys: int  # distinct customers (keys) the backlog was spread over
    seconds: float  # rows ÷ events_per_s
    events_per_s: float  # rows marked after the first batch ÷ time from the first mark to the last
    wall_seconds: float  # from starting the relay process until the backlog read 0
    failed_attempts: int  # publish attempts Kafka refused (should be 0)
    batch_size: int  # RELAY_BATCH_SIZE
    batch_cycle_ms: float  # median time between one batch's mark and the next's


def template(topic: str) -> OutboxMessage:
    """An `order.created` outbox message for the example order, with placeholder ids."""
    new = msgspec.structs.replace(
        examples.NEW_ORDER,
        customer_id=PLACEHOLDER_CUSTOMER,
        metadata={"source": "bench", "run": "drain"},
    )
    order = examples.stored(PLACEHOLDER_ORDER, datetime.now(UTC), new)
    request_id = str(uuid.uuid4())
    origin = Origin(cause="api", cause_id=request_id, correlation_id=request_id)
    event = order_created(PLACEHOLDER_EVENT, order)
    assert event.type == EventType.CREATED
    return to_outbox(event, topic=topic, source="/order-service", origin=origin)


def clear(conn: Sql, topic: str) -> None:
    """Remove a previous backlog of `topic`, so that each drain starts from the same table."""
    conn.execute("DELETE FROM outbox WHERE topic = %s", (topic,))


def fill(conn: Sql, topic: str, rows: int, keys: int) -> None:
    """Write `rows` outbox rows for `topic`, row g for customer g mod `keys`."""
    message = template(topic)
    params: dict[str, object] = {
        "topic": topic,
        "event_type": message.event_type,
        "payload": message.payload.decode(),
        "headers": Jsonb(message.headers),
        "p_order": str(PLACEHOLDER_ORDER),
        "p_customer": str(PLACEHOLDER_CUSTOMER),
        "p_event": str(PLACEHOLDER_EVENT),
        "customers": keys,
    }
    with step(f"writing {rows:,} outbox rows for {keys:,} customers"):
        for first in range(1, rows + 1, FILL_BATCH):
            last = min(rows, first + FILL_BATCH - 1)
            with conn.transaction():
                conn.execute(FILL, {**params, "first": first, "last": last})
        conn.execute("VACUUM ANALYZE outbox")


def messages(conn: Sql, topic: str) -> list[Record]:
    """The backlog as the relay will send it: key, value bytes, headers."""
    rows = conn.execute(
        "SELECT key, payload::text, headers FROM outbox WHERE topic = %s ORDER BY seq", (topic,)
    ).fetchall()
    return [
        (
            str(key).encode(),
            str(payload).encode(),
            [(name, str(value)) for name, value in dict(headers).items()],
        )
        for key, payload, headers in rows
    ]


def unpublished(conn: Sql) -> int:
    row = conn.execute("SELECT unpublished FROM outbox_backlog").fetchone()
    return int(row[0]) if row else 0


BATCHES = """
WITH batches AS (  -- a relay marks a batch in one statement, at one statement_timestamp()
    SELECT published_at AS marked FROM outbox WHERE topic = %(topic)s GROUP BY published_at
)
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM marked - previous))
  FROM (SELECT marked, lag(marked) OVER (ORDER BY marked) AS previous FROM batches) b
 WHERE previous IS NOT NULL
"""


def wait_started(conn: Sql, backlog: int, timeout: float = 60) -> None:
    """Wait for the relay's first acknowledged batch (it is past its start-up then)."""
    wait_for(lambda: unpublished(conn) < backlog, timeout=timeout, what="the relay to publish")


# The oldest row still to publish: one probe of the unpublished rows' index. Counting them
# instead (`outbox_backlog`) took ~120 ms of PostgreSQL's CPU a poll over a 100,000-row
# backlog, a quarter of a core taken from the drain it was watching.
OLDEST_UNPUBLISHED = """
SELECT min(seq) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL
"""


def _left(conn: Sql, last: int) -> int:
    """Rows left up to seq `last`, counting as the relay goes (oldest first); 0 when none
    is unpublished at all."""
    row = conn.execute(OLDEST_UNPUBLISHED).fetchone()
    oldest = row[0] if row else None
    return 0 if oldest is None else max(1, last - int(oldest) + 1)


def wait_drained(conn: Sql, rows: int) -> None:
    """Wait until the outbox has nothing unpublished (at least `rows` were, at the start)."""
    found = conn.execute("SELECT max(seq) FROM outbox").fetchone()
    last = int(found[0]) if found and found[0] is not None else 0
    total = max(rows, _left(conn, last))
    drained = wait_counting(
        "relay draining", lambda: _left(conn, last), total, timeout=600, interval=0.5
    )
    if not drained:
        raise RuntimeError("the relay did not drain the backlog within 10 minutes")


def drain(
    conn: Sql,
    topic: str,
    rows: int,
    start_relay: Callable[[], object],
    batch_size: int,
    keys: int,
) -> Drain:
    """Start the relay (`start_relay()`), wait for the backlog to empty, read the timings."""
    started = time.monotonic()
    start_relay()
    wait_drained(conn, rows)
    wall = time.monotonic() - started
    row = conn.execute(
        """
        SELECT count(*), extract(epoch FROM max(published_at) - min(published_at)),
               count(*) FILTER (WHERE published_at > (SELECT min(published_at) FROM outbox
                                                      WHERE topic = %s)),
               sum(attempts)
          FROM outbox WHERE topic = %s
        """,
        (topic, topic),
    ).fetchone()
    assert row is not None
    count, span, after_first, failed = int(row[0]), float(row[1]), int(row[2]), int(row[3])
    rate = after_first / span if span > 0 else float(count)  # one batch: about a second
    cycle = conn.execute(BATCHES, {"topic": topic}).fetchone()
    assert cycle is not None
    return Drain(
        rows=count,
        keys=keys,
        seconds=round(count / rate, 2),
        events_per_s=round(rate, 1),
        wall_seconds=round(wall, 2),
        failed_attempts=failed,
        batch_size=batch_size,
        batch_cycle_ms=round(float(cycle[0] or 0) * 1000, 1),
    )
