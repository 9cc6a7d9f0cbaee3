"""The one example order: the seed README's (one item, 3 x 49.99, an address in Minsk).

The OpenAPI document, the tests and the bench all start from it, so an example that
stops being a valid order fails everywhere at once instead of drifting in one copy.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from app.domain.order import Address, NewItem, NewOrder, Order
from app.domain.status import Status

CUSTOMER_ID = UUID("123e4567-e89b-12d3-a456-426614174000")
PRODUCT_ID = UUID("456e7890-e89b-12d3-a456-426614174001")
ADDRESS = Address(street="Main St, 1", city="Minsk", state="MI", country="BY", zip_code="220030")
NEW_ORDER = NewOrder(
    customer_id=CUSTOMER_ID,
    email="customer@example.com",
    items=[NewItem(PRODUCT_ID, "Test Product", Decimal("49.99"), 3)],
    currency="USD",
    metadata={"source": "web"},
    shipping_address=ADDRESS,
    billing_address=ADDRESS,
)

_JSON = msgspec.json.Encoder(decimal_format="number")  # money as JSON numbers, as clients send


def request_body(order: NewOrder = NEW_ORDER) -> dict[str, Any]:
    """`order` as the JSON body a client posts (a fresh dict: change it freely)."""
    body: dict[str, Any] = msgspec.json.decode(_JSON.encode(order))
    return body


def stored(order_id: UUID, at: datetime, order: NewOrder = NEW_ORDER) -> Order:
    """`order` as the database stores it when created at `at`: pending, version 1."""
    return msgspec.convert(
        {
            **msgspec.structs.asdict(order),
            "id": order_id,
            "status": Status.PENDING,
            "total_amount": order.total_amount,
            "version": 1,
            "created_at": at,
            "updated_at": at,
        },
        Order,
        from_attributes=True,  # NewItem -> Item: the same fields
    )
