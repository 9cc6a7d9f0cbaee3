"""Building orders and events for tests."""

from __future__ import annotations

import uuid
from decimal import Decimal

import msgspec

from app.domain import examples
from app.domain.events import EventType
from app.domain.order import NewOrder
from app.services.orders import Emitter

SOURCE = "/order-service"


def new_order(
    customer_id: uuid.UUID | None = None, *, price: str = "49.99", quantity: int = 3
) -> NewOrder:
    """The example order for `customer_id` (a new customer by default), its one item
    at `price` x `quantity`."""
    [item] = examples.NEW_ORDER.items
    return msgspec.structs.replace(
        examples.NEW_ORDER,
        customer_id=customer_id or uuid.uuid4(),
        items=[msgspec.structs.replace(item, price=Decimal(price), quantity=quantity)],
    )


def emitter(topic: str = "orders") -> Emitter:
    def topic_for(_: EventType) -> str:
        return topic

    return Emitter(source=SOURCE, topic_for=topic_for)
