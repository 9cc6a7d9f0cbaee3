"""The end state after a fault scenario, read from the database and, independently, from
the topic (kcat): what was lost, what was doubled, what arrived out of order."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg

from scripts.stack.waiting import wait_for
from tests.support import kcat


@dataclass
class Audit:
    orders: int
    unconfirmed: list[str]
    lost: list[str]  # outbox rows never seen on Kafka
    doubled: list[str]  # effects applied more than once
    order_violations: list[str]  # keys whose first occurrences are not in commit order
    kafka_records: int
    duplicates_on_kafka: int  # harmless (at least once), but worth knowing
    dlq: list[kcat.KafkaRecord] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.unconfirmed or self.lost or self.doubled or self.order_violations)


def settle(database_url: str, timeout: float) -> None:
    """Wait until no order is pending and the outbox is fully published."""

    def settled() -> bool:
        with psycopg.connect(database_url) as conn:
            pending = conn.execute(
                "SELECT count(*) FROM orders WHERE status = 'pending'"
            ).fetchone()
            backlog = conn.execute("SELECT unpublished + parked FROM outbox_backlog").fetchone()
        return pending == (0,) and backlog == (0,)

    wait_for(
        settled, timeout=timeout, interval=0.5, what="every order confirmed and the outbox drained"
    )


def audit(
    database_url: str,
    client: Mapping[str, str],
    topic: str,
    dlq_topic: str,
    accepted: set[str],
    expected_status: Mapping[str, str] | None = None,
) -> Audit:
    """`expected_status` names orders that should end other than `confirmed`."""
    expected = expected_status or {}
    with psycopg.connect(database_url) as conn:
        statuses = dict(conn.execute("SELECT id::text, status FROM orders").fetchall())
        rows = conn.execute("SELECT id::text, key, seq FROM outbox ORDER BY seq").fetchall()
        doubled_confirm = conn.execute(
            "SELECT order_id::text FROM order_status_history WHERE to_status = 'confirmed'"
            " GROUP BY order_id HAVING count(*) > 1"
        ).fetchall()
        doubled_events = conn.execute(
            "SELECT subject FROM outbox WHERE event_type = 'order.confirmed'"
            " GROUP BY subject HAVING count(*) > 1"
        ).fetchall()
        gaps = conn.execute(
            "SELECT order_id::text FROM order_status_history GROUP BY order_id"
            " HAVING max(version) <> count(*) OR min(version) <> 1"
        ).fetchall()
    records = kcat.read_all(client, topic)
    first_seen: dict[str, tuple[int, int]] = {}
    identified = [
        record for record in records if record.headers.get("ce_id")
    ]  # poison may have none
    for record in identified:
        first_seen.setdefault(record.headers["ce_id"], (record.partition, record.offset))

    by_key: dict[str, list[str]] = collections.defaultdict(list)
    for event_id, key, _ in rows:
        by_key[key].append(event_id)
    violations = []
    for key, event_ids in by_key.items():
        positions = [first_seen[e] for e in event_ids if e in first_seen]
        in_one_partition = len({partition for partition, _ in positions}) <= 1
        if not in_one_partition or positions != sorted(positions):
            violations.append(key)

    return Audit(
        orders=len(statuses),
        unconfirmed=sorted(
            [
                order
                for order, status in statuses.items()
                if status != expected.get(order, "confirmed")
            ]
            + [order for order in accepted if order not in statuses]
        ),
        lost=[event_id for event_id, _, _ in rows if event_id not in first_seen],
        doubled=[r[0] for r in doubled_confirm + doubled_events + gaps],
        order_violations=violations,
        kafka_records=len(records),
        duplicates_on_kafka=len(identified) - len(first_seen),
        dlq=kcat.read_all(client, dlq_topic),
    )
