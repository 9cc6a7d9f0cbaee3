"""Applying events exactly once, against real PostgreSQL."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import transaction
from app.db.inbox import Receipt
from app.db.tables import order_status_history, orders, outbox, processed_events
from app.domain.origin import Origin
from app.domain.status import Status
from app.events.cloudevents import IncomingEvent
from app.events.codec import encode, untyped_decoder
from app.services.orders import apply_transition, create_order
from consumer.handler import EventHandler, Plan
from tests.support.orders import SOURCE, emitter, new_order

pytestmark = pytest.mark.anyio


async def created_event(
    engine: AsyncEngine, price: str = "49.99"
) -> tuple[IncomingEvent, uuid.UUID]:
    async with transaction(engine) as conn:
        order = await create_order(
            conn, new_order(price=price), emitter=emitter(), origin=Origin("api")
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
        source="/warehouse",
        type=event_type,
        subject=None,
        data={"order_id": str(order_id)},
    )


def receipt(event: IncomingEvent, offset: int = 0) -> Receipt:
    return Receipt(event.source, event.id, event.type, "orders", 0, offset)


async def handle(handler: EventHandler, event: IncomingEvent) -> str:
    plan = handler.plan(event)
    assert isinstance(plan, Plan)
    result, _ = await handler.apply(event, plan, receipt(event))
    return result


async def status_of(engine: AsyncEngine, order_id: uuid.UUID) -> str:
    async with engine.connect() as conn:
        return str(
            (
                await conn.execute(select(orders.c.status).where(orders.c.id == order_id))
            ).scalar_one()
        )


async def test_created_order_is_confirmed_once(engine: AsyncEngine) -> None:
    handler = EventHandler(engine, emitter(), Decimal(1000))
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
    handler = EventHandler(engine, emitter(), Decimal(100))
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
    handler = EventHandler(engine, emitter(), Decimal(1000))
    event, order_id = await created_event(engine)
    await handle(handler, event)
    assert await handle(handler, external(order_id, "order.shipped")) == "applied"
    assert await handle(handler, external(order_id, "order.delivered")) == "applied"
    assert await status_of(engine, order_id) == "delivered"


async def test_an_illegal_transition_is_recorded_as_rejected_and_changes_nothing(
    engine: AsyncEngine,
) -> None:
    handler = EventHandler(engine, emitter(), Decimal(1000))
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
    handler = EventHandler(engine, emitter(), Decimal(1000))
    assert await handle(handler, external(uuid.uuid4(), "order.cancelled")) == "rejected"


async def test_a_transition_made_meanwhile_by_the_api_wins(engine: AsyncEngine) -> None:
    handler = EventHandler(engine, emitter(), Decimal(1000))
    event, order_id = await created_event(engine)
    async with transaction(engine) as conn:
        await apply_transition(
            conn, order_id, Status.CANCELLED, emitter=emitter(), origin=Origin("api")
        )
    assert await handle(handler, event) == "rejected"  # cancelled orders are not confirmed
    assert await status_of(engine, order_id) == "cancelled"
