"""The use cases: what the API and the consumer do to an order, each inside the
caller's transaction, each writing its outbox event in that same transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import direct, orders
from app.db.engine import after_commit
from app.db.wakeup import OutboxBell
from app.domain.errors import OrderNotFound
from app.domain.events import Event, EventType, order_created, status_changed
from app.domain.order import Attribution, NewOrder, Order, OrderState, moved, placed
from app.domain.origin import Origin
from app.domain.status import Status, check_transition
from app.events.cloudevents import to_outbox
from app.events.message import OutboxMessage

log = logging.getLogger("app.orders")


@dataclass(frozen=True)
class Emitter:
    """How our events leave: the CloudEvents source we sign them with, their topics, and
    the bell that wakes the relays once the transaction that wrote them has committed."""

    source: str
    topic_for: Callable[[EventType], str]
    bell: OutboxBell | None = None

    def message(self, event: Event, origin: Origin) -> OutboxMessage:
        """`event` as its outbox row will carry it."""
        return to_outbox(event, topic=self.topic_for(event.type), source=self.source, origin=origin)

    def ring_after(self, conn: direct.Connection) -> None:
        """Wake the relays once what `conn` is writing has committed."""
        if self.bell is not None:
            after_commit(conn, self.bell.ring)


async def create_order(
    conn: direct.Connection, new: NewOrder, *, emitter: Emitter, origin: Origin
) -> Order:
    """Write the order, its items, its first history entry and `order.created`: one
    statement, so the caller may run it on its own (`app.db.engine.statement`).

    Its times are this clock's: an order built here is the one announced, with no
    round trip to learn what the database's defaults made of it.
    """
    order = placed(uuid4(), new, datetime.now(UTC))
    announced = emitter.message(order_created(uuid4(), order), origin)
    await orders.insert_order(conn, order, _attribution(origin, emitter), announced)
    emitter.ring_after(conn)
    fields = {"order_id": str(order.id), "customer_id": str(order.customer_id)}
    after_commit(conn, partial(log.info, "order created", extra=fields))
    return order


async def apply_transition(
    conn: AsyncConnection,
    order_id: UUID,
    target: Status,
    *,
    emitter: Emitter,
    origin: Origin,
    reason: str | None = None,
) -> OrderState:
    """Move an order to `target`, or raise OrderNotFound / IllegalTransition.

    The order's row stays locked until commit, so concurrent changes to one
    order apply one after the other, each seeing the status the last one left.
    """
    current = await orders.lock_order(conn, order_id)
    if current is None:
        raise OrderNotFound(order_id)
    return await transition_locked(
        conn, current, target, emitter=emitter, origin=origin, reason=reason
    )


async def transition_locked(
    conn: direct.Connection,
    current: OrderState,
    target: Status,
    *,
    emitter: Emitter,
    origin: Origin,
    reason: str | None = None,
) -> OrderState:
    """`apply_transition` for an order whose row this transaction has locked already
    (`orders.lock_order…`), so `current` is what is stored; IllegalTransition if refused."""
    check_transition(current.status, target)
    changed = moved(current, target, datetime.now(UTC))
    announced = emitter.message(status_changed(uuid4(), changed, current.status, reason), origin)
    by = _attribution(origin, emitter, reason)
    await orders.set_status(conn, current, changed, by, announced)
    emitter.ring_after(conn)
    fields = {"order_id": str(current.id), "from": current.status.value, "to": target.value}
    after_commit(conn, partial(log.info, "order status changed", extra=fields))
    return changed


def _attribution(origin: Origin, emitter: Emitter, reason: str | None = None) -> Attribution:
    return Attribution(origin.cause, origin.cause_id, _actor(origin, emitter), reason)


def _actor(origin: Origin, emitter: Emitter) -> str:
    """Who the history names: the caller, another system (its event source), or, for a
    decision our consumer took on our own event, "consumer"."""
    if origin.cause == "event" and origin.actor in (None, emitter.source):
        return "consumer"
    return origin.actor or origin.cause
