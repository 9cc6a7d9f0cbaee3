"""Use cases against real PostgreSQL: each change and its event commit together, or not at all."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from decimal import Decimal

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.engine import transaction
from app.db.orders import get_order
from app.db.tables import order_items, order_status_history, orders, outbox
from app.domain.errors import IllegalTransition, OrderNotFound
from app.domain.events import EventType
from app.domain.origin import Origin
from app.domain.status import Status
from app.services.orders import Emitter, apply_transition, create_order
from tests.support.orders import emitter, new_order

pytestmark = pytest.mark.anyio
API = Origin(cause="api", cause_id="req-1", correlation_id="req-1")


async def count(conn: AsyncConnection, table: object) -> int:
    return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_create_order_writes_order_items_history_and_event_together(
    engine: AsyncEngine,
) -> None:
    async with transaction(engine) as conn:
        order = await create_order(conn, new_order(), emitter=emitter(), origin=API)
    async with engine.connect() as conn:
        assert await count(conn, orders) == 1
        assert await count(conn, order_items) == 1
        history = (await conn.execute(select(order_status_history))).one()
        assert (history.version, history.from_status, history.to_status, history.cause_id) == (
            1,
            None,
            "pending",
            "req-1",
        )
        event = (await conn.execute(select(outbox))).one()
        assert event.event_type == "order.created"
        assert event.key == str(order.customer_id)
        assert event.subject == str(order.id)
        assert event.payload["order_id"] == str(order.id)
        assert event.headers["ce_correlationid"] == "req-1"


async def test_items_are_stored_exactly_and_in_the_order_sent(engine: AsyncEngine) -> None:
    """The items travel as one JSON array: names with quotes, backslashes and emoji, the
    largest price, an exact cent, and their order all survive."""
    [template] = new_order().items
    sent = [
        msgspec.structs.replace(template, product_id=uuid.uuid4(), name=name, price=price)
        for name, price in [
            ('a "quoted" name \\ with a backslash', Decimal("0.10")),
            ("🍕 ünïcødé", Decimal("99999999.99")),
            ("[{not json}]", Decimal("0.00")),
        ]
    ]
    new = msgspec.structs.replace(new_order(), items=sent)
    async with transaction(engine) as conn:
        order = await create_order(conn, new, emitter=emitter(), origin=API)
    async with engine.connect() as conn:
        stored = await get_order(conn, order.id)
    assert stored is not None
    assert stored.items == order.items
    assert [msgspec.structs.asdict(i) for i in stored.items] == [
        msgspec.structs.asdict(i) for i in sent
    ]
    assert stored.total_amount == sum(i.price * i.quantity for i in sent)


async def test_nothing_is_written_when_the_event_cannot_be(engine: AsyncEngine) -> None:
    def no_topic(_: EventType) -> str:
        raise RuntimeError("routing failed")

    broken = Emitter(source="/order-service", topic_for=no_topic)
    with pytest.raises(RuntimeError, match="routing failed"):
        async with transaction(engine) as conn:
            await create_order(conn, new_order(), emitter=broken, origin=API)
    async with engine.connect() as conn:
        assert [
            await count(conn, table)
            for table in (orders, order_items, order_status_history, outbox)
        ] == [0, 0, 0, 0]


async def test_transition_updates_status_version_history_and_emits(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        order = await create_order(conn, new_order(), emitter=emitter(), origin=API)
    async with transaction(engine) as conn:
        state = await apply_transition(
            conn, order.id, Status.CONFIRMED, emitter=emitter(), origin=API
        )
    assert (state.status, state.version) == (Status.CONFIRMED, 2)
    async with engine.connect() as conn:
        types = (
            (await conn.execute(select(outbox.c.event_type).order_by(outbox.c.seq))).scalars().all()
        )
        assert types == ["order.created", "order.confirmed"]
        versions = (await conn.execute(select(order_status_history.c.version))).scalars().all()
        assert sorted(versions) == [1, 2]
        # One time for the change: the row's, its history entry's and its event's.
        stored = (await conn.execute(select(orders.c.updated_at))).scalar_one()
        entry = select(order_status_history.c.changed_at).where(order_status_history.c.version == 2)
        changed_at = (await conn.execute(entry)).scalar_one()
        payload = select(outbox.c.payload).where(outbox.c.event_type == "order.confirmed")
        data = (await conn.execute(payload)).scalar_one()
    assert stored == changed_at == state.updated_at > order.updated_at
    assert datetime.fromisoformat(data["occurred_at"]) == state.updated_at


async def test_illegal_transition_writes_nothing(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        order = await create_order(conn, new_order(), emitter=emitter(), origin=API)
    with pytest.raises(IllegalTransition):
        async with transaction(engine) as conn:
            await apply_transition(conn, order.id, Status.DELIVERED, emitter=emitter(), origin=API)
    async with engine.connect() as conn:
        assert await count(conn, outbox) == 1
        assert (await conn.execute(select(orders.c.status))).scalar_one() == "pending"


async def test_unknown_order(engine: AsyncEngine) -> None:
    with pytest.raises(OrderNotFound):
        async with transaction(engine) as conn:
            await apply_transition(
                conn, uuid.uuid4(), Status.CONFIRMED, emitter=emitter(), origin=API
            )


async def test_concurrent_transitions_of_one_order_apply_one_after_the_other(
    engine: AsyncEngine,
) -> None:
    async with transaction(engine) as conn:
        order = await create_order(conn, new_order(), emitter=emitter(), origin=API)

    # Two racers want to confirm the same pending order: the row lock lets one win,
    # the other then sees "confirmed" and is refused, so exactly one transition exists.
    async def confirm() -> str:
        try:
            async with transaction(engine) as conn:
                await apply_transition(
                    conn, order.id, Status.CONFIRMED, emitter=emitter(), origin=API
                )
        except IllegalTransition:
            return "refused"
        return "applied"

    results = sorted(await asyncio.gather(confirm(), confirm()))
    assert results == ["applied", "refused"]
    async with engine.connect() as conn:
        assert await count(conn, order_status_history) == 2


async def test_the_history_names_who_acted(engine: AsyncEngine) -> None:
    """The caller for API changes; "consumer" for our own event; another system's source."""
    own = emitter()
    customer = Origin(cause="api", cause_id="req-1", actor="customer:alice")
    async with transaction(engine) as conn:
        order = await create_order(conn, new_order(), emitter=own, origin=customer)
        await apply_transition(
            conn, order.id, Status.CONFIRMED, emitter=own,
            origin=Origin(cause="event", cause_id="e-1", actor=own.source),
        )  # fmt: skip
        await apply_transition(
            conn, order.id, Status.SHIPPED, emitter=own,
            origin=Origin(cause="event", cause_id="e-2", actor="/fulfillment"),
        )  # fmt: skip
    async with engine.connect() as conn:
        actors = (
            await conn.execute(
                select(order_status_history.c.actor).order_by(order_status_history.c.version)
            )
        ).scalars()
        assert list(actors) == ["customer:alice", "consumer", "/fulfillment"]
