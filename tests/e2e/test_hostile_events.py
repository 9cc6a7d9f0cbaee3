"""The hostile-event table: records an outsider can write onto `orders` and onto the
inbound `orders.fulfillment`, against the real processes and the real broker.

Every row ends applied, rejected (recorded in processed_events with the reason, never
applied) or in the DLQ (with the reason in its headers), and the records behind them
on the same partition are still applied: the consumer never stops.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import psycopg
import pytest
from confluent_kafka import KafkaException, Producer

from scripts.stack.paths import free_port
from scripts.stack.waiting import wait_for
from tests.support import kcat
from tests.support.pipeline import SEED_ORDER, Pipeline, Topics
from tests.support.servers import KafkaServer, PostgresServer, running

CUSTOMER = str(SEED_ORDER["customer_id"])
FULFILLMENT = "/fulfillment"
Outcome = Literal["applied", "rejected", "dlq"]


@dataclass
class Case:
    """One hostile record and what must become of it (`why`: a regex on the reason)."""

    name: str
    inbound: bool  # on orders.fulfillment (else on orders)
    event_type: str
    outcome: Outcome
    why: str
    value: bytes = b"{}"
    source: str = FULFILLMENT
    key: str | None = CUSTOMER
    headers: dict[str, bytes] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def hostile_cases() -> list[Case]:
    deep_2000 = b"[" * 2_000 + b"]" * 2_000
    deep_100000 = b"[" * 100_000 + b"]" * 100_000
    return [
        Case(
            "order.shipped on orders from a non-relay writer",
            inbound=False,
            event_type="order.shipped",
            outcome="rejected",
            why=r"only this service writes orders-\w+: source '/fulfillment' is not ours",
        ),
        Case(
            "order.confirmed on orders claiming another source",
            inbound=False,
            event_type="order.confirmed",
            source="/payments",
            outcome="rejected",
            why=r"source '/payments' is not ours",
        ),
        Case(
            "a type the inbound topic may not carry",
            inbound=True,
            event_type="order.confirmed",
            outcome="rejected",
            why=r"may carry order\.cancelled, order\.delivered, order\.shipped only, "
            r"not 'order\.confirmed'",
        ),
        Case(
            "a source the inbound topic does not name",
            inbound=True,
            event_type="order.shipped",
            source="/warehouse",
            outcome="rejected",
            why=r"carries events from /fulfillment only, not '/warehouse'",
        ),
        Case(
            "a key that is not the order's customer",
            inbound=True,
            event_type="order.shipped",
            key=str(uuid.uuid4()),
            outcome="rejected",
            why=r"the record's key '[0-9a-f-]{36}' is not the order's customer",
        ),
        Case(
            "a value nested 2,000 deep",
            inbound=False,
            event_type="order.shipped",
            value=deep_2000,
            outcome="dlq",
            why=r"^value nested 2000 levels deep exceeds 32$",
        ),
        Case(
            "a value nested 100,000 deep",
            inbound=True,
            event_type="order.shipped",
            value=deep_100000,
            outcome="dlq",
            why=r"^value nested 100000 levels deep exceeds 32$",
        ),
        Case(
            "a value that is not UTF-8",
            inbound=True,
            event_type="order.shipped",
            value=b'{"reason": "\xff\xfe"}',
            outcome="dlq",
            why=r"^value is not JSON: 'utf-8' codec can't decode",
        ),
        Case(
            "a 900 KB value",
            inbound=True,
            event_type="order.shipped",
            value=json.dumps({"reason": "x" * 900_000}).encode(),
            outcome="dlq",
            why=r"^invalid status change data: Expected `str` of length <= 500",
        ),
        Case(
            "a JSON array",
            inbound=True,
            event_type="order.shipped",
            value=b"[1, 2, 3]",
            outcome="dlq",
            why=r"^invalid status change data: Expected `object`, got `array`",
        ),
        Case(
            "a ce_id of 8,192 characters",
            inbound=False,
            event_type="order.shipped",
            event_id="a" * 8_192,
            outcome="dlq",
            why=r"^header ce_id of 8192 characters exceeds 128$",
        ),
        Case(
            "a 100 KB header",
            inbound=True,
            event_type="order.shipped",
            headers={"x-padding": b"p" * 100_000},
            outcome="dlq",
            why=r"^headers of \d+ bytes exceed 16384$",
        ),
    ]


@pytest.fixture
def metered_pipeline(
    database_url: str, postgres: PostgresServer, kafka: KafkaServer, topics: Topics, tmp_path: Path
) -> Iterator[Pipeline]:
    env = {"CONSUMER_METRICS_PORT": str(free_port())}
    with running(postgres, database_url, kafka, topics, tmp_path / "logs", extra_env=env) as p:
        yield p


def test_hostile_records_are_rejected_or_dead_lettered_and_their_partitions_flow(
    metered_pipeline: Pipeline, kafka: KafkaServer, topics: Topics, database_url: str
) -> None:
    app = metered_pipeline
    target, shipped_then_delivered, cancelled = (place_order(app) for _ in range(3))
    for order_id in (target, shipped_then_delivered, cancelled):
        app.wait_for_status(order_id, "confirmed", timeout=60)
    # Our relay put every event of this customer on one partition of `orders`; hostile
    # records go there too (and on partition 0 of the inbound topic), before later ones.
    partition = partition_of(kafka, topics, target)
    producer = Producer({**kafka.client_config(), "linger.ms": 0})
    cases = hostile_cases()
    for case in cases:
        topic = topics.fulfillment if case.inbound else topics.orders
        produce(producer, topic, 0 if case.inbound else partition, case, target)

    # Behind them on the same partitions: allowed events from fulfillment, and a new order.
    allowed = [
        ("order.shipped", shipped_then_delivered),
        ("order.delivered", shipped_then_delivered),
        ("order.cancelled", cancelled),
        ("order.shipped", target),
    ]
    for event_type, order_id in allowed:
        produce(
            producer,
            topics.fulfillment,
            0,
            Case("allowed", True, event_type, "applied", ""),
            order_id,
        )
    later = place_order(app)

    app.wait_for_status(later, "confirmed", timeout=60)
    app.wait_for_status(target, "shipped", timeout=60)
    app.wait_for_status(shipped_then_delivered, "delivered", timeout=60)
    app.wait_for_status(cancelled, "cancelled", timeout=60)

    expected_dlq = {case.name: case for case in cases if case.outcome == "dlq"}
    dead = wait_for(
        lambda: dlq_by_case(kafka, topics, len(expected_dlq)), timeout=60, what="the DLQ"
    )
    assert set(dead) == set(expected_dlq)
    for name, headers in dead.items():
        assert re.search(expected_dlq[name].why, headers["dlq_reason"]), (name, headers)
        assert headers["dlq_original_topic"] in (topics.orders, topics.fulfillment)

    rejected = rejected_rows(database_url)
    for case in cases:
        if case.outcome == "rejected":
            assert case.event_id in rejected, case.name
            assert re.search(case.why, rejected[case.event_id]), (case.name, rejected)
    assert len(rejected) == sum(case.outcome == "rejected" for case in cases)
    assert history_of(database_url, target) == ["pending", "confirmed", "shipped"]

    # One consumer, never restarted, still running; what it rejected it counted.
    [consumer] = app.processes["consumer"]
    assert consumer.returncode is None
    metrics = httpx.get(f"http://127.0.0.1:{app.env['CONSUMER_METRICS_PORT']}/metrics").text
    assert counted(metrics, r'orders_consumer_dead_letters_total\{reason="poison"\}') == len(
        expected_dlq
    )
    assert sum_counted(
        metrics, r'orders_consumer_events_total\{result="rejected",type="[^"]+"\}'
    ) == len(rejected)


def test_an_order_confirmed_from_fulfillment_is_rejected_and_changes_nothing(
    running_pipeline: Pipeline, kafka: KafkaServer, topics: Topics, database_url: str
) -> None:
    """Confirming (or failing) an order is our decision, from its stored total: an external
    order.confirmed, which would skip ORDER_MAX_TOTAL, is rejected and leaves no trace."""
    order_id = place_order(running_pipeline)
    running_pipeline.wait_for_status(order_id, "confirmed", timeout=60)
    producer = Producer(kafka.client_config())
    case = Case("confirm", True, "order.confirmed", "rejected", "")
    produce(producer, topics.fulfillment, 0, case, order_id)
    wait_for(lambda: case.event_id in rejected_rows(database_url), timeout=30, what="rejection")
    assert history_of(database_url, order_id) == ["pending", "confirmed"]


# --- helpers ---------------------------------------------------------------------------------


def place_order(app: Pipeline) -> str:
    with app.client() as client:
        response = client.post("/api/v1/orders", json=SEED_ORDER)
    response.raise_for_status()
    return str(response.json()["order"]["id"])


def partition_of(kafka: KafkaServer, topics: Topics, order_id: str) -> int:
    def found() -> int | None:
        for record in kcat.read_all(kafka.client_config(), topics.orders):
            if record.headers.get("ce_subject") == order_id:
                return record.partition
        return None

    return wait_for(found, timeout=30, what=f"order {order_id} on {topics.orders}")


def produce(producer: Producer, topic: str, partition: int, case: Case, order_id: str) -> None:
    headers = {
        "ce_specversion": b"1.0",
        "ce_id": case.event_id.encode(),
        "ce_source": case.source.encode(),
        "ce_type": case.event_type.encode(),
        "ce_subject": order_id.encode(),
        "content-type": b"application/json",
        "test-case": case.name.encode(),
        **case.headers,
    }
    errors: list[object] = []
    producer.produce(
        topic,
        case.value,
        case.key,
        partition=partition,
        headers=list(headers.items()),
        on_delivery=lambda error, _: errors.append(error),
    )
    producer.flush(30)
    if errors != [None]:
        raise KafkaException(errors[0] if errors else "not delivered")


def dlq_by_case(kafka: KafkaServer, topics: Topics, count: int) -> dict[str, dict[str, str]] | None:
    records = kcat.read_all(kafka.client_config(), topics.dlq)
    found = {record.headers.get("test-case", "?"): record.headers for record in records}
    return found if len(records) >= count else None


def rejected_rows(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT event_id, detail FROM processed_events WHERE outcome = 'rejected'"
        ).fetchall()
    return {str(event_id): str(detail) for event_id, detail in rows}


def history_of(database_url: str, order_id: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT to_status FROM order_status_history WHERE order_id = %s ORDER BY version",
            (order_id,),
        ).fetchall()
    return [str(status) for (status,) in rows]


def counted(metrics: str, series: str) -> int:
    match = re.search(rf"^{series} (\S+)$", metrics, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def sum_counted(metrics: str, series: str) -> int:
    return sum(int(float(m)) for m in re.findall(rf"^{series} (\S+)$", metrics, re.MULTILINE))
