"""Duplicates and poison written by an independent client (kcat) onto `orders` and the
inbound `orders.fulfillment` while orders flow: duplicates change nothing, poison lands
in the DLQ, the partitions move on."""

from __future__ import annotations

import json
import uuid

import psycopg

from scripts.stack.waiting import wait_for
from tests.faults.conftest import Scenario
from tests.support import kcat

ORDERS = 200
RATE = 30.0


def _confirmed(database_url: str, count: int) -> list[tuple[str, str]] | None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id::text, customer_id::text FROM orders"
            " WHERE status = 'confirmed' ORDER BY created_at LIMIT %s",
            (count,),
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows] if len(rows) == count else None


def _binary(
    event_type: str, subject: str, event_id: str | None = None, **extra: str
) -> dict[str, str]:
    return {
        "ce_specversion": "1.0",
        "ce_id": event_id or str(uuid.uuid4()),
        "ce_source": "/fulfillment",
        "ce_type": event_type,
        "ce_subject": subject,
        "content-type": "application/json",
        **extra,
    }


def test_duplicates_and_poison_from_outside(scenario: Scenario) -> None:
    client, topic = scenario.kafka.client_config(), scenario.topics.orders
    inbound = scenario.topics.fulfillment
    scenario.send(ORDERS, RATE)
    confirmed = wait_for(
        lambda: _confirmed(scenario.database_url, 8), timeout=60, what="8 confirmed orders"
    )
    shipped, (nul_order, nul_customer) = confirmed[:5], confirmed[5]

    # Duplicates: the first twenty order.created on the topic (or all, if fewer), byte for byte.
    on_topic = kcat.read_all(client, topic)
    copies = [r for r in on_topic if r.headers.get("ce_type") == "order.created"][:20]
    for record in copies:
        kcat.produce(client, topic, record.value or b"", key=record.key, headers=record.headers)
    # Fulfillment ships five orders and, being at-least-once itself, says so twice.
    for order_id, customer_id in shipped:
        headers = _binary("order.shipped", order_id, event_id=str(uuid.uuid4()))
        for _ in range(2):
            kcat.produce(
                client,
                inbound,
                b'{"reason": "left the warehouse"}',
                key=customer_id,
                headers=headers,
            )

    poison = {
        "not-json": (topic, b"\x00\xffnot json at all", {"test-poison": "not-json"}),
        "no-ce-id": (
            inbound,
            b"{}",
            {**_binary("order.shipped", nul_order), "ce_id": "", "test-poison": "no-ce-id"},
        ),
        "bad-specversion": (
            topic,
            json.dumps(
                {"specversion": "0.3", "id": "x", "source": "/w", "type": "order.shipped"}
            ).encode(),
            {"content-type": "application/cloudevents+json", "test-poison": "bad-specversion"},
        ),
        "bad-created-data": (
            topic,
            b'{"order_id": "not-a-uuid"}',
            {
                **_binary("order.created", nul_order),
                "ce_source": "/order-service",
                "test-poison": "bad-created-data",
            },
        ),
        "no-order-id": (
            inbound,
            b'{"reason": "?"}',
            {**_binary("order.shipped", ""), "test-poison": "no-order-id"},
        ),
        # Well-formed, but PostgreSQL cannot store it: poison at the first attempt.
        "fails-every-time": (
            inbound,
            json.dumps({"reason": "bad\u0000byte"}).encode(),
            {**_binary("order.cancelled", nul_order), "test-poison": "fails-every-time"},
        ),
    }
    for target, value, headers in poison.values():
        kcat.produce(client, target, value, key=nul_customer, headers=headers)

    expected = {order_id: "shipped" for order_id, _ in shipped}
    result = scenario.finish(expected_status=expected)

    assert result.clean, result
    assert result.orders == ORDERS
    dead = {record.headers.get("test-poison"): record for record in result.dlq}
    assert set(dead) == set(poison), f"the DLQ holds exactly the poison: {sorted(map(str, dead))}"
    assert len(result.dlq) == len(poison)
    assert "NUL character" in dead["fails-every-time"].headers["dlq_reason"]
    for name, record in dead.items():
        assert record.headers["dlq_original_topic"] == poison[str(name)][0]
        assert int(record.headers["dlq_original_offset"]) >= 0
        assert record.key == nul_customer  # the original key travels along
    with psycopg.connect(scenario.database_url) as conn:
        shipped_rows = conn.execute(
            "SELECT count(*) FROM order_status_history WHERE to_status = 'shipped'"
        ).fetchone()
        applied = conn.execute(
            "SELECT count(*) FROM processed_events"
            " WHERE event_type = 'order.shipped' AND outcome = 'applied'"
        ).fetchone()
    assert shipped_rows == (5,) and applied == (5,)
    duplicates = [
        line
        for line in scenario.pipeline.log_lines("consumer")
        if line["message"] == "event duplicate"
    ]
    assert len(copies) >= 8
    assert len(duplicates) >= len(copies) + 5  # every copy, and every second shipment, recognised
