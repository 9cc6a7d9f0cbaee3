"""What the consumer decides an event asks for, before touching the database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import cast
from uuid import UUID

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.events import EventType, OrderCreated
from app.domain.order import Item
from app.domain.status import Status
from app.events.cloudevents import IncomingEvent, PoisonMessage
from app.events.codec import encode, untyped_decoder
from app.services.orders import Emitter
from consumer.handler import EventHandler, Ignored, Plan

OURS = "/order-service"
WAREHOUSE = "/warehouse"
ORDER_ID = UUID("5f0c8a8e-7a43-4f8e-9d0e-0d6a3b9e2c11")
CUSTOMER_ID = UUID("123e4567-e89b-12d3-a456-426614174000")


@pytest.fixture
def handler() -> EventHandler:
    # plan() does no I/O, so there is no engine behind it.
    emitter = Emitter(source=OURS, topic_for=lambda _: "orders")
    return EventHandler(cast(AsyncEngine, None), emitter, Decimal(1_000_000))


def event(
    type_: str, *, source: str = WAREHOUSE, data: object = None, subject: str | None = None
) -> IncomingEvent:
    return IncomingEvent(id="evt-1", source=source, type=type_, subject=subject, data=data)


def created_data() -> object:
    """`order.created` data as the consumer sees it: our JSON, decoded untyped."""
    created = OrderCreated(
        order_id=ORDER_ID,
        customer_id=CUSTOMER_ID,
        email="customer@example.com",
        status=Status.PENDING,
        total_amount=Decimal("149.97"),
        currency="USD",
        items=[Item(UUID(int=1), "Test Product", Decimal("49.99"), 3)],
        metadata={"source": "web", "rating": 4.5},
        shipping_address=None,
        billing_address=None,
        version=1,
        created_at=datetime(2025, 1, 2, tzinfo=UTC),
    )
    return untyped_decoder.decode(encode(created))


def test_our_own_order_created_is_planned_with_the_decision_left_open(
    handler: EventHandler,
) -> None:
    plan = handler.plan(event(EventType.CREATED, source=OURS, data=created_data()))
    assert isinstance(plan, Plan)
    assert (plan.order_id, plan.target) == (ORDER_ID, None)
    assert plan.created is not None
    assert plan.created.total_amount == Decimal("149.97")


def test_order_created_from_another_source_is_ignored(handler: EventHandler) -> None:
    plan = handler.plan(event(EventType.CREATED, data=created_data()))
    assert isinstance(plan, Ignored)


def test_our_own_status_announcement_is_ignored(handler: EventHandler) -> None:
    data = {"order_id": str(ORDER_ID)}
    assert isinstance(handler.plan(event(EventType.CONFIRMED, source=OURS, data=data)), Ignored)


def test_external_shipped_event_asks_for_shipped(handler: EventHandler) -> None:
    data = {"order_id": str(ORDER_ID), "reason": "left the warehouse"}
    assert handler.plan(event(EventType.SHIPPED, data=data)) == Plan(
        order_id=ORDER_ID, target=Status.SHIPPED, reason="left the warehouse"
    )


@pytest.mark.parametrize(
    ("type_", "target"),
    [
        (EventType.CONFIRMED, Status.CONFIRMED),
        (EventType.DELIVERED, Status.DELIVERED),
        (EventType.CANCELLED, Status.CANCELLED),
        (EventType.FAILED, Status.FAILED),
    ],
)
def test_each_external_status_event_asks_for_its_status(
    handler: EventHandler, type_: EventType, target: Status
) -> None:
    plan = handler.plan(event(type_, data={"order_id": str(ORDER_ID)}))
    assert isinstance(plan, Plan)
    assert plan.target == target


@pytest.mark.parametrize("data", [None, {}])
def test_order_id_comes_from_the_subject_when_data_has_none(
    handler: EventHandler, data: object
) -> None:
    plan = handler.plan(event(EventType.SHIPPED, data=data, subject=str(ORDER_ID)))
    assert isinstance(plan, Plan)
    assert plan.order_id == ORDER_ID


def test_data_order_id_wins_over_the_subject(handler: EventHandler) -> None:
    data = {"order_id": str(ORDER_ID)}
    plan = handler.plan(event(EventType.SHIPPED, data=data, subject=str(UUID(int=7))))
    assert isinstance(plan, Plan)
    assert plan.order_id == ORDER_ID


@pytest.mark.parametrize("subject", [None, "", "not-a-uuid"])
def test_status_event_without_an_order_id_is_poison(
    handler: EventHandler, subject: str | None
) -> None:
    with pytest.raises(PoisonMessage, match="order id"):
        handler.plan(event(EventType.SHIPPED, subject=subject))


@pytest.mark.parametrize("type_", ["order.returned", "com.example.ping", ""])
def test_unknown_event_type_is_ignored(handler: EventHandler, type_: str) -> None:
    plan = handler.plan(event(type_, data={"order_id": str(ORDER_ID)}))
    assert isinstance(plan, Ignored)
    assert repr(type_) in plan.why


@pytest.mark.parametrize(
    "data",
    [
        {"order_id": 5},
        {"order_id": "not-a-uuid"},
        {"order_id": str(ORDER_ID), "reason": 7},
        {"order_id": str(ORDER_ID), "reason": "x" * 501},
        ["not", "an", "object"],
        "shipped",
    ],
    ids=["id-int", "id-text", "reason-int", "reason-long", "array", "string"],
)
def test_status_event_with_malformed_data_is_poison(handler: EventHandler, data: object) -> None:
    with pytest.raises(PoisonMessage, match="invalid status change data"):
        handler.plan(event(EventType.SHIPPED, data=data, subject=str(ORDER_ID)))


def test_our_own_order_created_with_malformed_data_is_poison(handler: EventHandler) -> None:
    data = {"order_id": str(ORDER_ID), "status": "pending"}
    with pytest.raises(PoisonMessage, match=r"invalid order\.created data"):
        handler.plan(event(EventType.CREATED, source=OURS, data=data))
