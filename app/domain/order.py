"""Orders and their parts, as a client submits them and as they are stored."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import Meta

from app.domain.errors import FieldError, InvalidInput
from app.domain.money import CENT, CURRENCIES, MAX_PRICE, Money, has_cents_at_most, line_total
from app.domain.status import Status

# The end of the string: Python's `$` alone also matches before a final newline ("BY\n").
END = r"$(?!\n)"
# The rule the database enforces (domain `email_address`), as a Python regex: the two
# agree case by case (tests/integration/test_mirrored_constants.py).
EMAIL_PATTERN = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+" + END
)

# PostgreSQL text and jsonb cannot hold U+0000, so no free text may contain it.
NO_NUL = r"^[^\x00]*$"
METADATA_MAX_KEYS = 50
METADATA_KEY_MAX_LENGTH = 64
METADATA_TEXT_MAX_LENGTH = 500

Text = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
MetadataKey = Annotated[str, Meta(min_length=1, max_length=METADATA_KEY_MAX_LENGTH, pattern=NO_NUL)]
MetadataValue = (
    Annotated[str, Meta(max_length=METADATA_TEXT_MAX_LENGTH, pattern=NO_NUL)]
    | int
    | float
    | bool
    | None
)
Metadata = Annotated[dict[MetadataKey, MetadataValue], Meta(max_length=METADATA_MAX_KEYS)]


class Address(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    street: Text
    city: Annotated[str, Meta(min_length=1, max_length=100, pattern=NO_NUL)]
    state: Annotated[str, Meta(max_length=100, pattern=NO_NUL)] = ""
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}" + END, description="ISO 3166-1 alpha-2")]
    zip_code: Annotated[str, Meta(min_length=1, max_length=20, pattern=NO_NUL)]


class NewItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    product_id: UUID
    name: Text
    price: Annotated[
        Decimal, Meta(description="Unit price: a JSON number, ≥ 0, at most 2 decimals")
    ]
    quantity: Annotated[
        int, Meta(ge=1, le=10_000, description="A JSON integer, written as one: 3, not 3.0")
    ]


class OrderContent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What an order says, whoever it is for; the server owns id, status, totals and times."""

    email: Annotated[str, Meta(max_length=254, pattern=EMAIL_PATTERN)]
    items: Annotated[list[NewItem], Meta(min_length=1)]
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}" + END, description="ISO 4217 code")]
    metadata: Metadata = msgspec.field(default_factory=dict)
    shipping_address: Address | None = None
    billing_address: Address | None = None

    @property
    def total_amount(self) -> Decimal:
        return sum((line_total(item.price, item.quantity) for item in self.items), Decimal("0.00"))


class NewOrder(OrderContent, frozen=True, kw_only=True):
    """An order to write: its content and the customer it belongs to."""

    customer_id: UUID


class OrderRequest(OrderContent, frozen=True, kw_only=True):
    """An order as a client submits it: `customer_id` may be left out (the caller's own)."""

    customer_id: Annotated[
        UUID | None, Meta(description="Yours when left out; staff name the customer")
    ] = None

    def owned_by(self, customer_id: UUID) -> NewOrder:
        content = {name: getattr(self, name) for name in _CONTENT_FIELDS}
        return NewOrder(customer_id=customer_id, **content)


# Read once: `msgspec.structs.fields` resolves the annotations on every call (about 5% of
# the API's CPU when it ran per request).
_CONTENT_FIELDS = tuple(f.name for f in msgspec.structs.fields(OrderContent))


def check_new_order(order: OrderContent, *, max_items: int) -> None:
    """The rules a schema cannot say; raise InvalidInput listing every broken one."""
    errors: list[FieldError] = []
    if len(order.items) > max_items:
        errors.append(FieldError("items", f"at most {max_items} items per order"))
    if order.currency not in CURRENCIES:
        errors.append(FieldError("currency", f"{order.currency} is not an ISO 4217 currency"))
    for index, item in enumerate(order.items):
        where = f"items[{index}].price"
        if not item.price.is_finite() or item.price < 0:
            errors.append(FieldError(where, "must be a number ≥ 0"))
        elif item.price > MAX_PRICE:
            errors.append(FieldError(where, f"must be at most {MAX_PRICE}"))
        elif not has_cents_at_most(item.price):
            errors.append(FieldError(where, "must have at most 2 decimals"))
    if errors:
        raise InvalidInput(errors)


class Item(msgspec.Struct, frozen=True):
    product_id: UUID
    name: str
    price: Money
    quantity: int


class Order(msgspec.Struct, frozen=True):
    """An order as stored, with the fields the server owns."""

    id: UUID
    customer_id: UUID
    email: str
    status: Status
    total_amount: Decimal
    currency: str
    items: list[Item]
    metadata: dict[str, MetadataValue]
    shipping_address: Address | None
    billing_address: Address | None
    version: int
    created_at: datetime
    updated_at: datetime


FIRST_VERSION = 1  # a new order's version (the database's default too: migration-checked)


def placed(order_id: UUID, new: NewOrder, at: datetime) -> Order:
    """A new order as it is stored: pending, at its first version, created (and last
    updated) `at`; prices to the cent, so 49 and 49.00 are stored and announced alike."""
    items = [
        Item(item.product_id, item.name, item.price.quantize(CENT), item.quantity)
        for item in new.items
    ]
    content = {name: getattr(new, name) for name in _CONTENT_FIELDS}
    return Order(
        id=order_id,
        customer_id=new.customer_id,
        status=Status.PENDING,
        total_amount=new.total_amount,
        version=FIRST_VERSION,
        created_at=at,
        updated_at=at,
        **{**content, "items": items},
    )


class OrderState(msgspec.Struct, frozen=True):
    """The part of an order a status change reads and writes."""

    id: UUID
    customer_id: UUID
    status: Status
    version: int
    updated_at: datetime


# PostgreSQL keeps microseconds: the smallest step an order's `updated_at` can take.
TICK = timedelta(microseconds=1)


def moved(current: OrderState, target: Status, at: datetime) -> OrderState:
    """`current` moved to `target`: its next version, last updated `at` — or a tick after
    its last update, if this clock is behind the one that made it (an order's times never
    go back, and every change of it has a time of its own)."""
    return msgspec.structs.replace(
        current,
        status=target,
        version=current.version + 1,
        updated_at=max(at, current.updated_at + TICK),
    )


class Attribution(msgspec.Struct, frozen=True):
    """Who made a change and why: what its history entry says besides the change itself."""

    cause: str
    cause_id: str | None
    actor: str
    reason: str | None = None


class Transition(msgspec.Struct, frozen=True):
    """One entry of an order's status history."""

    version: int
    from_status: Status | None
    to_status: Status
    cause: str
    cause_id: str | None
    reason: str | None
    changed_at: datetime
    actor: str | None = None  # None: recorded before actors were (migration 0003)
