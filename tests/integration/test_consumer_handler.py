"""Applying events exactly once, against real PostgreSQL: decided from the stored order,
trusted by topic, keyed by the order's customer, refused data classified as poison."""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal

import msgspec
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import load
from app.db import inbox
from app.db.engine import transaction
from app.db.inbox import Receipt
from app.db.tables import order_status_history, orders, outbox, processed_events
from app.domain.errors import Refused
from app.domain.origin import Origin
from app.domain.status import Status
from app.events.cloudevents import IncomingEvent
from app.events.codec import encode, untyped_decoder
from app.services.orders import apply_transition, create_order
from consumer.handler import Applied, Duplicate, EventHandler, Ignored, Outcome, Rejected, Work
from consumer.trust import TopicTrust
from tests.support.orders import SOURCE, emitter, new_order

pytestmark = pytest.mark.anyio
ORDERS, INBOUND = "orders", "orders.fulfillment"
CUSTOMER = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")


def make_handler(engine: AsyncEngine, limit: int = 1000) -> EventHandler:
    trust = TopicTrust.of(load({}, env_file=None).kafka)  # orders + orders.fulfillment
    return EventHandler(engine, emitter(), Decimal(limit), trust)


async def created_event(
    engine: AsyncEngine, price: str = "49.99"
) -> tuple[IncomingEvent, uuid.UUID]:
    async with transaction(engine) as conn:
        order = await create_order(
            conn, new_order(CUSTOMER, price=price), emitter=emitter(), origin=Origin("api")
        )
    async with engine.connect() as conn:
        row = (await conn.execute(select(outbox))).one()
    event = IncomingEvent(
        id=str(row.id),
        source=SOURCE,
        type="order.created",
        subject=str(order.id),
        data=untyped_decoder.decode(encode(row.payload)),
    )
    return event, order.id


def external(order_id: uuid.UUID, event_type: str, event_id: str | None = None) -> IncomingEvent:
    return IncomingEvent(
        id=event_id or str(uuid.uuid4()),
        source="/fulfillment",
        type=event_type,
        subject=None,
        data={"order_id": str(order_id)},
    )


def receipt(event: IncomingEvent, topic: str, offset: int = 0) -> Receipt:
    return Receipt(event.source, event.id, event.type, topic, 0, offset)


async def handle(
    handler: EventHandler,
    event: IncomingEvent,
    *,
    topic: str | None = None,
    key: bytes | None = str(CUSTOMER).encode(),
) -> str:
    """Plan and apply as the loop does; our own events arrive on `orders`, others inbound."""
    topic = topic or (ORDERS if event.source == SOURCE else INBOUND)
    plan = handler.plan(event, topic=topic, key=key)
    assert not isinstance(plan, Ignored)
    [outcome] = await handler.apply_all([Work(event, plan, receipt(event, topic))])
    return label(outcome)


def label(outcome: Outcome) -> str:
    return {Applied: "applied", Duplicate: "duplicate", Rejected: "rejected"}[type(outcome)]


async def outcome_of(engine: AsyncEngine, event: IncomingEvent) -> tuple[str, str | None]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(processed_events.c.outcome, processed_events.c.detail).where(
                    processed_events.c.event_id == event.id
                )
            )
        ).one()
    return row.outcome, row.detail


async def status_of(engine: AsyncEngine, order_id: uuid.UUID) -> str:
    async with engine.connect() as conn:
        return str(
            (
                await conn.execute(select(orders.c.status).where(orders.c.id == order_id))
            ).scalar_one()
        )


async def test_created_order_is_confirmed_once(engine: AsyncEngine) -> None:
    handler = make_handler(engine)
    event, order_id = await created_event(engine)
    assert await handle(handler, event) == "applied"
    assert await handle(handler, event) == "duplicate"
    assert await status_of(engine, order_id) == "confirmed"
    async with engine.connect() as conn:
        emitted = (
            (await conn.execute(select(outbox.c.event_type).order_by(outbox.c.seq))).scalars().all()
        )
        history = (
            await conn.execute(
                select(order_status_history.c.to_status, order_status_history.c.cause_id).order_by(
                    order_status_history.c.version
                )
            )
        ).all()
        recorded = (await conn.execute(select(processed_events.c.outcome))).scalars().all()
    assert emitted == ["order.created", "order.confirmed"]
    assert history == [("pending", None), ("confirmed", event.id)]
    assert recorded == ["applied"]


async def test_an_order_over_the_limit_fails(engine: AsyncEngine) -> None:
    handler = make_handler(engine, 100)
    event, order_id = await created_event(engine, price="49.99")  # 149.97 > 100
    assert await handle(handler, event) == "applied"
    assert await status_of(engine, order_id) == "failed"
    async with engine.connect() as conn:
        reason = (
            await conn.execute(
                text("SELECT reason FROM order_status_history WHERE to_status = 'failed'")
            )
        ).scalar_one()
    assert "exceeds the limit" in reason


async def test_external_status_events_move_the_order(engine: AsyncEngine) -> None:
    handler = make_handler(engine)
    event, order_id = await created_event(engine)
    await handle(handler, event)
    assert await handle(handler, external(order_id, "order.shipped")) == "applied"
    assert await handle(handler, external(order_id, "order.delivered")) == "applied"
    assert await status_of(engine, order_id) == "delivered"


async def test_an_illegal_transition_is_recorded_as_rejected_and_changes_nothing(
    engine: AsyncEngine,
) -> None:
    handler = make_handler(engine)
    _, order_id = await created_event(engine)
    shipped = external(order_id, "order.shipped")  # still pending: cannot ship
    assert await handle(handler, shipped) == "rejected"
    assert await handle(handler, shipped) == "duplicate"  # and never retried as new
    assert await status_of(engine, order_id) == "pending"
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(processed_events).where(processed_events.c.event_id == shipped.id)
            )
        ).one()
        events = (await conn.execute(select(outbox.c.event_type))).scalars().all()
    assert row.outcome == "rejected" and "cannot become shipped" in row.detail
    assert events == ["order.created"]


async def test_an_unknown_order_is_rejected(engine: AsyncEngine) -> None:
    handler = make_handler(engine)
    assert await handle(handler, external(uuid.uuid4(), "order.cancelled")) == "rejected"


async def test_a_transition_made_meanwhile_by_the_api_wins(engine: AsyncEngine) -> None:
    handler = make_handler(engine)
    event, order_id = await created_event(engine)
    async with transaction(engine) as conn:
        await apply_transition(
            conn, order_id, Status.CANCELLED, emitter=emitter(), origin=Origin("api")
        )
    assert await handle(handler, event) == "rejected"  # cancelled orders are not confirmed
    assert await status_of(engine, order_id) == "cancelled"


async def test_order_created_is_decided_from_the_stored_total_not_the_event(
    engine: AsyncEngine,
) -> None:
    handler = make_handler(engine, 100)
    event, order_id = await created_event(engine, price="49.99")  # stored: 149.97 > 100
    assert isinstance(event.data, dict)
    forged = msgspec.structs.replace(event, data={**event.data, "total_amount": Decimal(1)})
    assert await handle(handler, forged) == "applied"
    assert await status_of(engine, order_id) == "failed"  # the stored total decided


async def test_an_order_shipped_on_our_own_topic_from_elsewhere_is_rejected(
    engine: AsyncEngine,
) -> None:
    handler = make_handler(engine)
    event, order_id = await created_event(engine)
    await handle(handler, event)
    forged = external(order_id, "order.shipped")
    assert await handle(handler, forged, topic=ORDERS) == "rejected"
    assert await handle(handler, forged, topic=ORDERS) == "duplicate"
    assert await status_of(engine, order_id) == "confirmed"
    assert await outcome_of(engine, forged) == (
        "rejected",
        "only this service writes orders: source '/fulfillment' is not ours",
    )


@pytest.mark.parametrize("key", [None, b"", str(uuid.uuid4()).encode(), b"\xff" * 5000])
async def test_an_inbound_event_keyed_by_another_customer_is_rejected(
    engine: AsyncEngine, key: bytes | None
) -> None:
    handler = make_handler(engine)
    event, order_id = await created_event(engine)
    await handle(handler, event)
    shipped = external(order_id, "order.shipped")
    assert await handle(handler, shipped, key=key) == "rejected"
    assert await status_of(engine, order_id) == "confirmed"
    outcome, detail = await outcome_of(engine, shipped)
    assert outcome == "rejected"
    assert detail is not None and "is not the order's customer" in detail
    assert len(detail) < 200


async def test_a_disallowed_type_on_the_inbound_topic_is_rejected(engine: AsyncEngine) -> None:
    handler = make_handler(engine, 100)
    _, order_id = await created_event(engine)  # pending, and over the limit
    confirmed = external(order_id, "order.confirmed")
    assert await handle(handler, confirmed) == "rejected"
    assert await status_of(engine, order_id) == "pending"
    outcome, detail = await outcome_of(engine, confirmed)
    assert outcome == "rejected" and detail is not None and "not 'order.confirmed'" in detail


async def test_an_event_id_too_long_for_the_index_is_refused_not_unavailable(
    engine: AsyncEngine,
) -> None:
    """What the header bound prevents, one level down: PostgreSQL refuses the index row
    (SQLSTATE 54000), and that is the record's fault (poison), not an outage."""
    event = external(uuid.uuid4(), "order.shipped", event_id=secrets.token_hex(4096))
    with pytest.raises(Refused) as refused:
        async with transaction(engine) as conn:
            await inbox.claim(conn, receipt(event, INBOUND), order_id=None)
    assert refused.value.sqlstate == "54000"
