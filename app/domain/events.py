"""The events an order emits, as data.

Their wire form (CloudEvents on Kafka) lives in app.events.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import Meta

from app.domain.money import Money
from app.domain.order import Address, Item, MetadataValue, Order, OrderState
from app.domain.status import Status

UtcTime = Annotated[datetime, Meta(tz=True)]  # RFC 3339 with an offset, always


class EventType(StrEnum):
    CREATED = "order.created"
    CONFIRMED = "order.confirmed"
    SHIPPED = "order.shipped"
    DELIVERED = "order.delivered"
    CANCELLED = "order.cancelled"
    FAILED = "order.failed"


# Each status an order can move to is announced by exactly one event type.
EVENT_FOR_STATUS: dict[Status, EventType] = {
    Status.PENDING: EventType.CREATED,
    Status.CONFIRMED: EventType.CONFIRMED,
    Status.SHIPPED: EventType.SHIPPED,
    Status.DELIVERED: EventType.DELIVERED,
    Status.CANCELLED: EventType.CANCELLED,
    Status.FAILED: EventType.FAILED,
}
STATUS_FOR_EVENT: dict[EventType, Status] = {
    event: status for status, event in EVENT_FOR_STATUS.items()
}


class OrderCreated(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`order.created`: the whole order as it was committed."""

    order_id: UUID
    customer_id: UUID
    email: str
    status: Status
    total_amount: Money
    currency: str
    items: list[Item]
    metadata: dict[str, MetadataValue]
    shipping_address: Address | None
    billing_address: Address | None
    version: int
    created_at: UtcTime


class OrderStatusChanged(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`order.confirmed`, `.shipped`, `.delivered`, `.cancelled`, `.failed`."""

    order_id: UUID
    customer_id: UUID
    status: Status
    previous_status: Status
    version: int
    occurred_at: UtcTime
    reason: str | None = None


EventData = OrderCreated | OrderStatusChanged


class Event(msgspec.Struct, frozen=True):
    """One event about one order, ready to be written to the outbox."""

    id: UUID
    type: EventType
    order_id: UUID
    customer_id: UUID
    time: datetime
    data: EventData


# `order.created` carries the order as committed: each of its fields but `order_id` is
# the order's field of that name (the order's `id` is `order_id`; `updated_at` is left out).
_FROM_ORDER = tuple(f.name for f in msgspec.structs.fields(OrderCreated) if f.name != "order_id")


def order_created(event_id: UUID, order: Order) -> Event:
    fields = msgspec.structs.asdict(order)
    data = OrderCreated(order_id=order.id, **{name: fields[name] for name in _FROM_ORDER})
    return Event(event_id, EventType.CREATED, order.id, order.customer_id, order.created_at, data)


def status_changed(
    event_id: UUID, state: OrderState, previous: Status, reason: str | None
) -> Event:
    data = OrderStatusChanged(
        order_id=state.id,
        customer_id=state.customer_id,
        status=state.status,
        previous_status=previous,
        version=state.version,
        occurred_at=state.updated_at,
        reason=reason,
    )
    event_type = EVENT_FOR_STATUS[state.status]
    return Event(event_id, event_type, state.id, state.customer_id, state.updated_at, data)
