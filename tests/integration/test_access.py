"""The API's use cases against real PostgreSQL, without HTTP: a principal reaches its own
orders only, and an idempotency key runs a use case once per principal, its outcome stored."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.orders import OrderFilter
from app.db.tables import idempotency_keys, orders
from app.domain.errors import Forbidden, IdempotencyKeyReused, OrderNotFound
from app.domain.order import Order
from app.domain.origin import Origin
from app.domain.principal import Principal, Scope
from app.domain.status import Status
from app.services import access
from app.services.idempotency import Once
from tests.support.orders import emitter, new_order

pytestmark = pytest.mark.anyio
TTL = timedelta(hours=1)
API = Origin(cause="api", cause_id="req-1", correlation_id="req-1")
ALICE = Principal("alice", uuid.uuid4(), frozenset({Scope.READ, Scope.WRITE}))
BOB = Principal("bob", uuid.uuid4(), frozenset({Scope.READ, Scope.WRITE}))
STAFF = Principal("ops", None, frozenset({Scope.ADMIN}))


async def rows(engine: AsyncEngine, table: object) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table)  # type: ignore[arg-type]
        return int((await conn.execute(query)).scalar_one())


async def place(
    engine: AsyncEngine, who: Principal, key: str | None, quantity: int = 3
) -> Once[Order]:
    new = new_order(who.customer_id, quantity=quantity)
    return await access.place(engine, who, new, emitter=emitter(), origin=API, key=key, ttl=TTL)


async def test_a_key_runs_once_and_returns_the_stored_outcome(engine: AsyncEngine) -> None:
    first = await place(engine, ALICE, "key-1")
    again = await place(engine, ALICE, "key-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.outcome == first.outcome
    assert await rows(engine, orders) == 1
    with pytest.raises(IdempotencyKeyReused):
        await place(engine, ALICE, "key-1", quantity=4)
    assert await rows(engine, orders) == 1


async def test_a_key_is_its_principals_own(engine: AsyncEngine) -> None:
    alices = await place(engine, ALICE, "shared")
    bobs = await place(engine, BOB, "shared")
    assert alices.outcome.id != bobs.outcome.id
    assert not bobs.replayed
    assert (await rows(engine, orders), await rows(engine, idempotency_keys)) == (2, 2)


async def test_another_customers_order_does_not_exist_for_the_caller(engine: AsyncEngine) -> None:
    order = (await place(engine, ALICE, None)).outcome
    for use_case in (access.read, access.follow):
        with pytest.raises(OrderNotFound):
            await use_case(engine, BOB, order.id)
    with pytest.raises(OrderNotFound):
        await access.cancel(engine, BOB, order.id, emitter=emitter(), origin=API, reason=None)
    assert (await access.read(engine, STAFF, order.id)).status == Status.PENDING
    cancelled = await access.cancel(
        engine, STAFF, order.id, emitter=emitter(), origin=API, reason="x"
    )
    assert cancelled.status == Status.CANCELLED
    assert [t.to_status for t in await access.follow(engine, ALICE, order.id)] == [
        Status.PENDING,
        Status.CANCELLED,
    ]


async def test_a_listing_holds_the_callers_orders_only(engine: AsyncEngine) -> None:
    for who in (ALICE, ALICE, ALICE, BOB):
        await place(engine, who, None)
    first = await access.browse(engine, ALICE, OrderFilter(), None, 2)
    rest = await access.browse(engine, ALICE, OrderFilter(), first.last, 2)
    assert (len(first.orders), len(rest.orders), rest.last) == (2, 1, None)
    assert {o.customer_id for o in first.orders + rest.orders} == {ALICE.customer_id}
    assert len((await access.browse(engine, STAFF, OrderFilter(), None, 10)).orders) == 4
    with pytest.raises(Forbidden):
        await access.browse(engine, ALICE, OrderFilter(customer_id=BOB.customer_id), None, 10)
