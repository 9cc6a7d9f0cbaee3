"""The seed's order travels API → PostgreSQL → relay → Kafka → consumer → confirmed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from decimal import Decimal

import jsonschema_rs

from app.events import schemas
from scripts.stack.waiting import wait_for
from tests.support import kcat
from tests.support.pipeline import SEED_ORDER, Pipeline, Topics
from tests.support.servers import KafkaServer

REQUEST_ID = "550e8400-e29b-41d4-a716-446655440000"


def test_seed_order_is_created_published_and_confirmed(
    running_pipeline: Pipeline, kafka: KafkaServer, topics: Topics
) -> None:
    with running_pipeline.client() as client:
        response = client.post(
            "/api/v1/orders", json=SEED_ORDER, headers={"X-Request-ID": REQUEST_ID}
        )

    assert response.status_code == 201
    assert response.headers["x-request-id"] == REQUEST_ID
    body = response.json()
    assert body["message"] == "Order created successfully"
    order = body["order"]
    assert order["status"] == "pending"
    assert Decimal(str(order["total_amount"])) == Decimal("149.97")
    assert order["customer_id"] == SEED_ORDER["customer_id"]
    assert order["items"] == SEED_ORDER["items"]
    assert order["created_at"].endswith("Z")

    running_pipeline.wait_for_status(order["id"], "confirmed", timeout=60)

    records = wait_for(
        lambda: _events_of(kafka.client_config(), topics.orders, order["id"], count=2),
        timeout=30,
        what="order.created and order.confirmed on the topic",
    )
    created, confirmed = records
    assert created.key == SEED_ORDER["customer_id"]
    assert created.headers["ce_type"] == "order.created"
    assert created.headers["ce_specversion"] == "1.0"
    assert created.headers["ce_subject"] == order["id"]
    assert created.headers["ce_source"] == "/order-service"
    assert created.headers["content-type"] == "application/json"
    assert created.headers["ce_correlationid"] == REQUEST_ID
    assert uuid.UUID(created.headers["ce_id"])
    assert created.headers["ce_time"].endswith("Z")
    data = created.json()
    assert isinstance(data, dict)
    assert data["order_id"] == order["id"] and data["version"] == 1
    for record in (created, confirmed):  # the published schemas describe what is on the wire
        schema = json.loads(
            (schemas.DIRECTORY / f"{record.headers['ce_type']}.schema.json").read_text()
        )
        jsonschema_rs.validate(schema, record.json())
    assert confirmed.headers["ce_type"] == "order.confirmed"
    assert confirmed.key == SEED_ORDER["customer_id"]
    assert confirmed.partition == created.partition  # same key, same partition, in order
    assert confirmed.offset > created.offset


def test_processes_exit_cleanly_on_sigterm(running_pipeline: Pipeline) -> None:
    codes = running_pipeline.stop_all()
    assert codes == {"api-0": 0, "relay-0": 0, "consumer-0": 0}


def _events_of(
    client: Mapping[str, str], topic: str, order_id: str, count: int
) -> list[kcat.KafkaRecord] | None:
    found = [r for r in kcat.read_all(client, topic) if r.headers.get("ce_subject") == order_id]
    return found if len(found) >= count else None
