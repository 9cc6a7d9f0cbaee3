"""Orders as a principal reaches them: place, read, list, follow, cancel.

Each use case is one transaction of its own. Another customer's order does not exist
for the caller (OrderNotFound, as for a missing one): no use case here tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db import direct, history
from app.db import orders as rows
from app.db.engine import statement, transaction
from app.db.orders import OrderFilter, Position
from app.domain.errors import OrderNotFound
from app.domain.order import NewOrder, Order, Transition
from app.domain.origin import Origin
from app.domain.principal import Principal
from app.domain.status import Status
from app.services import idempotency
from app.services.idempotency import Once
from app.services.orders import Emitter, apply_transition, create_order


@dataclass(frozen=True)
class Page:
    orders: list[Order]
    last: Position | None  # where the next page starts; None on the last page


async def place(
    engine: AsyncEngine,
    principal: Principal,
    new: NewOrder,
    *,
    emitter: Emitter,
    origin: Origin,
    key: str | None,
    ttl: timedelta,
) -> Once[Order]:
    """Create the order; with a key, at most once per (principal, key)."""

    async def create(conn: direct.Connection) -> Order:
        return await create_order(conn, new, emitter=emitter, origin=origin)

    if key is None:
        async with statement(engine) as checkout:
            return Once(await create(checkout), replayed=False)
    async with transaction(engine) as conn:
        return await idempotency.once(
            conn, principal.key, key, new, ttl=ttl, run=create, outcome=Order
        )


async def read(engine: AsyncEngine, principal: Principal, order_id: UUID) -> Order:
    async with transaction(engine) as conn:
        order = await rows.get_order(conn, order_id)
    if order is None or not principal.reaches(order.customer_id):
        raise OrderNotFound(order_id)
    return order


async def browse(
    engine: AsyncEngine,
    principal: Principal,
    where: OrderFilter,
    after: Position | None,
    limit: int,
) -> Page:
    """A page of the orders the principal may see, oldest first (Forbidden if `where`
    names another customer and the principal is not staff)."""
    mine = msgspec.structs.replace(where, customer_id=principal.listing_filter(where.customer_id))
    async with transaction(engine) as conn:
        found = await rows.list_orders(conn, mine, after, limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return Page(page, Position(page[-1].created_at, page[-1].id) if more else None)


async def follow(engine: AsyncEngine, principal: Principal, order_id: UUID) -> list[Transition]:
    """The order's status history, oldest first."""
    async with transaction(engine) as conn:
        await _reachable(conn, principal, order_id)
        transitions = await history.list_transitions(conn, order_id)
    if not transitions:
        raise OrderNotFound(order_id)
    return transitions


async def cancel(
    engine: AsyncEngine,
    principal: Principal,
    order_id: UUID,
    *,
    emitter: Emitter,
    origin: Origin,
    reason: str | None,
) -> Order:
    async with transaction(engine) as conn:
        await _reachable(conn, principal, order_id)
        await apply_transition(
            conn, order_id, Status.CANCELLED, emitter=emitter, origin=origin, reason=reason
        )
        order = await rows.get_order(conn, order_id)
    if order is None:  # cannot happen: the row is locked by the transition until commit
        raise OrderNotFound(order_id)
    return order


async def _reachable(conn: AsyncConnection, principal: Principal, order_id: UUID) -> None:
    owner = await rows.owner_of(conn, order_id)
    if owner is None or not principal.reaches(owner):
        raise OrderNotFound(order_id)
