"""The published event schemas (docs/events) are the ones the code generates, and they
accept what our encoder writes and refuse what it never would."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import jsonschema_rs
import pytest

from app.domain.events import EventType, order_created, status_changed
from app.domain.order import Item, Order, OrderState
from app.domain.status import Status
from app.events import schemas
from app.events.codec import encode

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ORDER = Order(
    id=uuid.uuid4(), customer_id=uuid.uuid4(), email="a@example.com", status=Status.PENDING,
    total_amount=Decimal("149.97"), currency="USD",
    items=[Item(uuid.uuid4(), "Test Product", Decimal("49.99"), 3)], metadata={"source": "web"},
    shipping_address=None, billing_address=None, version=1, created_at=NOW, updated_at=NOW,
)  # fmt: skip


def validator(event_type: EventType) -> jsonschema_rs.Validator:
    path = schemas.DIRECTORY / f"{event_type.value}.schema.json"
    return jsonschema_rs.validator_for(json.loads(path.read_text()))


def test_the_committed_schemas_are_the_generated_ones() -> None:
    committed = {path.name: path.read_text() for path in schemas.DIRECTORY.glob("*.schema.json")}
    assert committed == schemas.files(), "run `make schemas` and commit docs/events/"


def test_order_created_data_validates_with_money_as_numbers() -> None:
    data = json.loads(encode(order_created(uuid.uuid4(), ORDER).data))
    assert data["total_amount"] == 149.97
    validator(EventType.CREATED).validate(data)
    with pytest.raises(jsonschema_rs.ValidationError):
        validator(EventType.CREATED).validate({**data, "total_amount": "149.97"})


@pytest.mark.parametrize(
    "status", [Status.CONFIRMED, Status.SHIPPED, Status.CANCELLED, Status.FAILED]
)
def test_status_change_data_validates(status: Status) -> None:
    state = OrderState(ORDER.id, ORDER.customer_id, status, 2, NOW)
    event = status_changed(uuid.uuid4(), state, Status.PENDING, None)
    data = json.loads(encode(event.data))
    validator(event.type).validate(data)
    with pytest.raises(jsonschema_rs.ValidationError):
        validator(event.type).validate(
            {key: value for key, value in data.items() if key != "version"}
        )
