"""Building orders and events for tests."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import msgspec

from app.domain.events import EventType
from app.domain.order import NewItem, NewOrder
from app.services.orders import Emitter
from tests.support.pipeline import SEED_ORDER

SOURCE = "/order-service"


def new_order(
    customer_id: uuid.UUID | None = None, *, price: str = "49.99", quantity: int = 3
) -> NewOrder:
    body: dict[str, Any] = {**SEED_ORDER, "customer_id": str(customer_id or uuid.uuid4())}
    order = msgspec.convert(body, NewOrder, strict=False)
    item = NewItem(order.items[0].product_id, "Test Product", Decimal(price), quantity)
    return msgspec.structs.replace(order, items=[item])


def emitter(topic: str = "orders") -> Emitter:
    def topic_for(_: EventType) -> str:
        return topic

    return Emitter(source=SOURCE, topic_for=topic_for)
