"""Exact money and the rules of a new order that the wire schema cannot express."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import msgspec
import pytest

from app.domain import examples
from app.domain.errors import FieldError, InvalidInput
from app.domain.events import order_created
from app.domain.money import MAX_PRICE, has_cents_at_most, line_total
from app.domain.order import (
    TICK,
    NewItem,
    NewOrder,
    OrderRequest,
    OrderState,
    check_new_order,
    moved,
)
from app.domain.status import Status

PRODUCT = UUID("456e7890-e89b-12d3-a456-426614174001")
CUSTOMER = UUID("123e4567-e89b-12d3-a456-426614174000")


def new_order(*lines: tuple[str, int], currency: str = "USD") -> NewOrder:
    """An order whose items are (price, quantity) pairs; prices as exact strings."""
    items = [NewItem(PRODUCT, "Test Product", Decimal(price), qty) for price, qty in lines]
    return NewOrder(
        customer_id=CUSTOMER, email="customer@example.com", items=items, currency=currency
    )


def refusals(order: NewOrder, *, max_items: int = 100) -> list[FieldError]:
    with pytest.raises(InvalidInput) as refused:
        check_new_order(order, max_items=max_items)
    return refused.value.errors


@pytest.mark.parametrize("amount", ["49.9", "49.90", "49", "49.99", "0", "0.01", "1E+2"])
def test_amount_with_at_most_two_decimals_is_accepted(amount: str) -> None:
    assert has_cents_at_most(Decimal(amount))


@pytest.mark.parametrize(
    "amount", ["49.999", "0.001", "0.1000000000000000055511151231257827", "NaN", "Infinity"]
)
def test_amount_needing_more_than_cents_is_not(amount: str) -> None:
    assert not has_cents_at_most(Decimal(amount))


@pytest.mark.parametrize("price", ["49.9", "49.90", "49", "0", "0.00"])
def test_order_with_a_cent_exact_price_passes(price: str) -> None:
    check_new_order(new_order((price, 1)), max_items=100)


def test_price_with_three_decimals_is_refused() -> None:
    assert refusals(new_order(("49.999", 1))) == [
        FieldError("items[0].price", "must have at most 2 decimals")
    ]


@pytest.mark.parametrize("price", ["-0.01", "-49.99", "NaN", "sNaN", "Infinity", "-Infinity"])
def test_negative_or_non_finite_price_is_refused(price: str) -> None:
    assert refusals(new_order((price, 1))) == [FieldError("items[0].price", "must be a number ≥ 0")]


def test_highest_price_is_accepted() -> None:
    check_new_order(new_order((str(MAX_PRICE), 1)), max_items=100)


@pytest.mark.parametrize("price", [str(MAX_PRICE + Decimal("0.01")), "1E+400"])
def test_price_above_the_maximum_is_refused(price: str) -> None:
    assert refusals(new_order((price, 1))) == [
        FieldError("items[0].price", f"must be at most {MAX_PRICE}")
    ]


@pytest.mark.parametrize("currency", ["USD", "EUR", "BYN", "JPY"])
def test_iso_4217_currency_is_accepted(currency: str) -> None:
    check_new_order(new_order(("1.00", 1), currency=currency), max_items=100)


@pytest.mark.parametrize("currency", ["XXX", "ABC", "XAU", "BYR"])
def test_unknown_or_non_payment_currency_is_refused(currency: str) -> None:
    errors = refusals(new_order(("1.00", 1), currency=currency))
    assert [error.field for error in errors] == ["currency"]
    assert currency in errors[0].message


def test_as_many_items_as_allowed_pass() -> None:
    check_new_order(new_order(("1.00", 1), ("2.00", 1)), max_items=2)


def test_too_many_items_are_refused() -> None:
    errors = refusals(new_order(("1.00", 1), ("2.00", 1), ("3.00", 1)), max_items=2)
    assert errors == [FieldError("items", "at most 2 items per order")]


def test_every_broken_rule_is_reported_at_once_with_its_field() -> None:
    order = new_order(("1.00", 1), ("-5", 1), ("0.001", 1), currency="XXX")
    errors = refusals(order, max_items=2)
    assert {error.field for error in errors} == {
        "items",
        "currency",
        "items[1].price",
        "items[2].price",
    }


def test_seed_total_is_exact() -> None:
    total = new_order(("49.99", 3)).total_amount
    assert total == Decimal("149.97")
    assert str(total) == "149.97"


def test_total_of_tenths_has_no_float_error_and_two_decimals() -> None:
    assert str(new_order(("0.1", 3)).total_amount) == "0.30"


def test_total_sums_every_line() -> None:
    assert str(new_order(("0.10", 3), ("0.20", 1), ("1000.01", 2)).total_amount) == "2000.52"


def test_line_total_multiplies_exactly() -> None:
    assert line_total(Decimal("49.99"), 3) == Decimal("149.97")


def test_the_example_order_is_a_valid_request_for_149_97() -> None:
    body = examples.request_body()
    request = msgspec.json.decode(msgspec.json.encode(body), type=OrderRequest)
    check_new_order(request, max_items=1)
    assert request.owned_by(examples.CUSTOMER_ID) == examples.NEW_ORDER
    assert body["items"][0]["price"] == 49.99  # money as a JSON number, as clients send it
    assert examples.NEW_ORDER.total_amount == Decimal("149.97")


def test_order_created_is_the_order_as_committed() -> None:
    order = examples.stored(UUID(int=5), datetime(2025, 1, 2, tzinfo=UTC))
    data = order_created(UUID(int=6), order).data
    fields = msgspec.structs.asdict(order)
    expected = {name: value for name, value in fields.items() if name not in ("id", "updated_at")}
    assert msgspec.structs.asdict(data) == {"order_id": order.id, **expected}
    assert order.status is Status.PENDING and order.total_amount == Decimal("149.97")


def test_a_moved_order_takes_the_next_version_and_the_writers_time() -> None:
    current = OrderState(uuid4(), uuid4(), Status.PENDING, 1, datetime(2026, 1, 1, tzinfo=UTC))
    at = datetime(2026, 1, 2, tzinfo=UTC)
    assert moved(current, Status.CONFIRMED, at) == OrderState(
        current.id, current.customer_id, Status.CONFIRMED, 2, at
    )


def test_a_clock_behind_the_last_writer_still_moves_the_time_forward() -> None:
    last = datetime(2026, 1, 2, tzinfo=UTC)
    current = OrderState(uuid4(), uuid4(), Status.CONFIRMED, 2, last)
    for behind in (last, last - timedelta(hours=1)):
        assert moved(current, Status.SHIPPED, behind).updated_at == last + TICK
