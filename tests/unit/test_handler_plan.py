"""What the consumer decides an event asks for, before touching the database: trust comes
from the topic it arrived on (our own topic: our source only; an inbound topic: its types
from its source), and the key travels along to be checked against the stored order."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import cast
from uuid import UUID

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import load
from app.domain import examples
from app.domain.events import EventType, order_created
from app.domain.status import Status
from app.events.cloudevents import IncomingEvent, PoisonMessage
from app.events.codec import encode, untyped_decoder
from app.services.orders import Emitter
from consumer.handler import Confirm, Decision, EventHandler, Ignored, Transition, Untrusted
from consumer.trust import TopicTrust

OURS = "/order-service"
FULFILLMENT = "/fulfillment"
WAREHOUSE = "/warehouse"
ORDERS, INBOUND = "orders", "orders.fulfillment"
KEY = b"123e4567-e89b-12d3-a456-426614174000"
ORDER_ID = UUID("5f0c8a8e-7a43-4f8e-9d0e-0d6a3b9e2c11")
CUSTOMER_ID = UUID("123e4567-e89b-12d3-a456-426614174000")


@pytest.fixture
def handler() -> EventHandler:
    # plan() does no I/O, so there is no engine behind it.
    emitter = Emitter(source=OURS, topic_for=lambda _: ORDERS)
    trust = TopicTrust.of(load({}, env_file=None).kafka)  # defaults: orders + orders.fulfillment
    return EventHandler(cast(AsyncEngine, None), emitter, Decimal(1_000_000), trust)


def event(
    type_: str, *, source: str = FULFILLMENT, data: object = None, subject: str | None = None
) -> IncomingEvent:
    return IncomingEvent(id="evt-1", source=source, type=type_, subject=subject, data=data)


def created_data() -> object:
    """`order.created` data as the consumer sees it: our JSON, decoded untyped."""
    order = examples.stored(ORDER_ID, datetime(2025, 1, 2, tzinfo=UTC))
    assert order.customer_id == CUSTOMER_ID
    return untyped_decoder.decode(encode(order_created(UUID(int=9), order).data))


def plan(
    handler: EventHandler, incoming: IncomingEvent, topic: str = INBOUND, key: bytes | None = KEY
) -> Decision:
    return handler.plan(incoming, topic=topic, key=key)


def test_our_own_order_created_is_planned_with_the_decision_left_to_the_stored_order(
    handler: EventHandler,
) -> None:
    planned = plan(handler, event(EventType.CREATED, source=OURS, data=created_data()), ORDERS)
    assert planned == Confirm(order_id=ORDER_ID, key=KEY.decode())


def test_our_own_status_announcement_is_ignored(handler: EventHandler) -> None:
    data = {"order_id": str(ORDER_ID)}
    planned = plan(handler, event(EventType.CONFIRMED, source=OURS, data=data), ORDERS)
    assert isinstance(planned, Ignored)


@pytest.mark.parametrize(
    "type_",
    [
        EventType.CREATED,
        EventType.CONFIRMED,
        EventType.SHIPPED,
        EventType.CANCELLED,
        EventType.FAILED,
        "com.example.ping",
    ],
)
@pytest.mark.parametrize("source", [WAREHOUSE, FULFILLMENT, "/order-service/"])
def test_anything_not_ours_on_our_own_topic_is_rejected(
    handler: EventHandler, type_: str, source: str
) -> None:
    incoming = event(type_, source=source, data=created_data(), subject=str(ORDER_ID))
    planned = plan(handler, incoming, ORDERS)
    assert planned == Untrusted(
        f"only this service writes orders: source {source!r} is not ours", ORDER_ID
    )


def test_external_shipped_event_asks_for_shipped(handler: EventHandler) -> None:
    data = {"order_id": str(ORDER_ID), "reason": "left the warehouse"}
    assert plan(handler, event(EventType.SHIPPED, data=data)) == Transition(
        order_id=ORDER_ID, target=Status.SHIPPED, key=KEY.decode(), reason="left the warehouse"
    )


@pytest.mark.parametrize(
    ("type_", "target"),
    [
        (EventType.SHIPPED, Status.SHIPPED),
        (EventType.DELIVERED, Status.DELIVERED),
        (EventType.CANCELLED, Status.CANCELLED),
    ],
)
def test_each_allowed_inbound_type_asks_for_its_status(
    handler: EventHandler, type_: EventType, target: Status
) -> None:
    planned = plan(handler, event(type_, data={"order_id": str(ORDER_ID)}))
    assert isinstance(planned, Transition)
    assert planned.target == target


@pytest.mark.parametrize(
    "type_", [EventType.CREATED, EventType.CONFIRMED, EventType.FAILED, "order.returned", ""]
)
def test_a_type_the_inbound_topic_may_not_carry_is_rejected(
    handler: EventHandler, type_: str
) -> None:
    planned = plan(handler, event(type_, data=created_data(), subject=str(ORDER_ID)))
    assert isinstance(planned, Untrusted)
    assert planned.why == (
        "orders.fulfillment may carry order.cancelled, order.delivered, order.shipped only,"
        f" not {type_!r}"
    )
    assert planned.order_id == ORDER_ID


@pytest.mark.parametrize("source", [WAREHOUSE, OURS, "/fulfillment/", ""])
def test_a_source_the_inbound_topic_does_not_name_is_rejected(
    handler: EventHandler, source: str
) -> None:
    planned = plan(handler, event(EventType.SHIPPED, source=source, subject="not-a-uuid"))
    assert planned == Untrusted(
        f"orders.fulfillment carries events from /fulfillment only, not {source!r}", None
    )


def test_a_topic_nobody_configured_is_rejected(handler: EventHandler) -> None:
    planned = plan(handler, event(EventType.SHIPPED), "elsewhere")
    assert isinstance(planned, Untrusted)
    assert planned.why == "elsewhere is not a topic this service reads"


@pytest.mark.parametrize(
    ("key", "planned_key"),
    [(None, None), (b"\xff\xfe", "\ufffd\ufffd"), (b"k" * 10_000, "k" * 64)],
)
def test_the_key_travels_with_the_plan_bounded(
    handler: EventHandler, key: bytes | None, planned_key: str | None
) -> None:
    planned = plan(handler, event(EventType.SHIPPED, subject=str(ORDER_ID)), key=key)
    assert isinstance(planned, Transition)
    assert planned.key == planned_key


@pytest.mark.parametrize("data", [None, {}])
def test_order_id_comes_from_the_subject_when_data_has_none(
    handler: EventHandler, data: object
) -> None:
    planned = plan(handler, event(EventType.SHIPPED, data=data, subject=str(ORDER_ID)))
    assert isinstance(planned, Transition)
    assert planned.order_id == ORDER_ID


def test_data_order_id_wins_over_the_subject(handler: EventHandler) -> None:
    data = {"order_id": str(ORDER_ID)}
    planned = plan(handler, event(EventType.SHIPPED, data=data, subject=str(UUID(int=7))))
    assert isinstance(planned, Transition)
    assert planned.order_id == ORDER_ID


@pytest.mark.parametrize("subject", [None, "", "not-a-uuid"])
def test_status_event_without_an_order_id_is_poison(
    handler: EventHandler, subject: str | None
) -> None:
    with pytest.raises(PoisonMessage, match="order id"):
        plan(handler, event(EventType.SHIPPED, subject=subject))


@pytest.mark.parametrize(
    "data",
    [
        {"order_id": 5},
        {"order_id": "not-a-uuid"},
        {"order_id": str(ORDER_ID), "reason": 7},
        {"order_id": str(ORDER_ID), "reason": "x" * 501},
        ["not", "an", "object"],
        [],
        "shipped",
    ],
    ids=["id-int", "id-text", "reason-int", "reason-long", "array", "empty-array", "string"],
)
def test_status_event_with_malformed_data_is_poison(handler: EventHandler, data: object) -> None:
    with pytest.raises(PoisonMessage, match="invalid status change data"):
        plan(handler, event(EventType.SHIPPED, data=data, subject=str(ORDER_ID)))


def test_our_own_order_created_with_malformed_data_is_poison(handler: EventHandler) -> None:
    data = {"order_id": str(ORDER_ID), "status": "pending"}
    with pytest.raises(PoisonMessage, match=r"invalid order\.created data"):
        plan(handler, event(EventType.CREATED, source=OURS, data=data), ORDERS)
