"""Decoding request bodies: exact money, no coercion, and errors that name the field."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from app.domain.errors import FieldError, InvalidInput
from app.domain.order import check_new_order
from app.http.wire import MAX_DEPTH, MalformedJson, decode_new_order, field_error

LONG_PRICE = b"0.1000000000000000055511151231257827"


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def refusals(body: bytes) -> list[FieldError]:
    with pytest.raises(InvalidInput) as refused:
        decode_new_order(body)
    return refused.value.errors


def test_seed_body_decodes_with_an_exact_decimal_price(seed_body: bytes) -> None:
    order = decode_new_order(seed_body)
    price = order.items[0].price
    assert isinstance(price, Decimal)
    assert str(price) == "49.99"
    assert order.total_amount == Decimal("149.97")


def test_seed_body_keeps_every_field(seed_body: bytes) -> None:
    order = decode_new_order(seed_body)
    assert order.customer_id == UUID("123e4567-e89b-12d3-a456-426614174000")
    assert order.email == "customer@example.com"
    assert order.currency == "USD"
    assert order.metadata == {"source": "web"}
    assert order.shipping_address is not None
    assert order.shipping_address.country == "BY"
    assert order.billing_address == order.shipping_address


def test_seed_body_passes_the_domain_rules(seed_body: bytes) -> None:
    check_new_order(decode_new_order(seed_body), max_items=100)


def test_optional_fields_may_be_left_out(seed: dict[str, Any]) -> None:
    for name in ("metadata", "shipping_address", "billing_address"):
        del seed[name]
    order = decode_new_order(encode(seed))
    assert (order.metadata, order.shipping_address, order.billing_address) == ({}, None, None)


def test_long_decimal_is_kept_exact_then_refused_by_the_rules(seed_body: bytes) -> None:
    order = decode_new_order(seed_body.replace(b"49.99", LONG_PRICE))
    assert order.items[0].price == Decimal(LONG_PRICE.decode())
    with pytest.raises(InvalidInput) as refused:
        check_new_order(order, max_items=100)
    assert [error.field for error in refused.value.errors] == ["items[0].price"]


def test_price_sent_as_a_string_is_refused(seed_body: bytes) -> None:
    body = seed_body.replace(b"49.99", b'"49.99"')
    assert refusals(body) == [FieldError("items[0].price", "must be a JSON number, not a string")]


def test_string_price_is_reported_at_its_own_item(seed: dict[str, Any]) -> None:
    seed["items"].append({**seed["items"][0], "price": "1.00"})
    assert [error.field for error in refusals(encode(seed))] == ["items[1].price"]


@pytest.mark.parametrize(
    "body", [b"", b"{", b"not json", b'{"customer_id": }', b"{'a': 1}"], ids=repr
)
def test_body_that_is_not_json_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedJson):
        decode_new_order(body)


def test_truncated_body_is_malformed_even_after_a_wrong_field() -> None:
    with pytest.raises(MalformedJson):
        decode_new_order(b'{"id": 1, "customer_id": "123e4567-e89b')


@pytest.mark.parametrize("field", ["id", "status", "total_amount", "created_at", "version"])
def test_server_owned_field_is_refused_by_name(seed: dict[str, Any], field: str) -> None:
    seed[field] = "pending" if field == "status" else 1
    assert refusals(encode(seed)) == [FieldError(field, "is not a field of this object")]


def test_unknown_field_inside_an_item_is_refused_with_its_path(seed: dict[str, Any]) -> None:
    seed["items"][0]["discount"] = 5
    assert refusals(encode(seed)) == [
        FieldError("items[0].discount", "is not a field of this object")
    ]


@pytest.mark.parametrize("field", ["email", "items", "currency"])  # customer_id: the caller
def test_missing_required_field_is_named(seed: dict[str, Any], field: str) -> None:
    del seed[field]
    assert refusals(encode(seed)) == [FieldError(field, "is required")]


def test_missing_nested_field_is_named_with_its_path(seed: dict[str, Any]) -> None:
    del seed["shipping_address"]["city"]
    assert refusals(encode(seed)) == [FieldError("shipping_address.city", "is required")]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("items", 0, "quantity"), "3", "items[0].quantity"),
        (("items", 0, "quantity"), 3.0, "items[0].quantity"),
        (("items", 0, "price"), True, "items[0].price"),
        (("customer_id",), 5, "customer_id"),
        (("email",), None, "email"),
    ],
    ids=["quantity-string", "quantity-float", "price-bool", "customer-int", "email-null"],
)
def test_wrong_json_type_is_refused_not_coerced(
    seed: dict[str, Any], path: tuple[str | int, ...], value: object, field: str
) -> None:
    target: Any = seed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    errors = refusals(encode(seed))
    assert [error.field for error in errors] == [field]
    assert errors[0].message.startswith("Expected")


def test_empty_item_list_is_refused(seed: dict[str, Any]) -> None:
    seed["items"] = []
    assert [error.field for error in refusals(encode(seed))] == ["items"]


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (("email",), "not-an-email", FieldError("email", "must be a valid email address")),
        (
            ("currency",),
            "usd",
            FieldError("currency", "must be a 3-letter ISO 4217 currency code, like USD"),
        ),
        (
            ("shipping_address", "country"),
            "Belarus",
            FieldError(
                "shipping_address.country", "must be a 2-letter ISO 3166 country code, like BY"
            ),
        ),
        (
            ("billing_address", "country"),
            "by",
            FieldError(
                "billing_address.country", "must be a 2-letter ISO 3166 country code, like BY"
            ),
        ),
    ],
    ids=["email", "currency", "shipping-country", "billing-country"],
)
def test_pattern_mismatch_gets_a_friendly_message(
    seed: dict[str, Any], path: tuple[str, ...], value: str, error: FieldError
) -> None:
    target: Any = seed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert refusals(encode(seed)) == [error]


def test_body_of_the_wrong_json_type_is_reported_at_body() -> None:
    assert refusals(b"[]") == [FieldError("body", "Expected `object`, got `array`")]


def test_bad_metadata_key_is_reported_at_metadata(seed: dict[str, Any]) -> None:
    seed["metadata"] = {"": "x"}
    assert [error.field for error in refusals(encode(seed))] == ["metadata"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Expected `int`, got `str` - at `$.items[0].quantity`",
            FieldError("items[0].quantity", "Expected `int`, got `str`"),
        ),
        ("Object missing required field `email`", FieldError("email", "is required")),
        (
            "Object missing required field `name` - at `$.items[2]`",
            FieldError("items[2].name", "is required"),
        ),
        (
            "Object contains unknown field `id`",
            FieldError("id", "is not a field of this object"),
        ),
        (
            "Object contains unknown field `x` - at `$.billing_address`",
            FieldError("billing_address.x", "is not a field of this object"),
        ),
        (
            "Expected `str` matching regex '^[A-Z]{3}$' - at `$.currency`",
            FieldError("currency", "must be a 3-letter ISO 4217 currency code, like USD"),
        ),
        (
            "Expected `str` matching regex '^[0-9]+$' - at `$.shipping_address.zip_code`",
            FieldError("shipping_address.zip_code", "has the wrong format"),
        ),
        ("Expected `object`, got `array`", FieldError("body", "Expected `object`, got `array`")),
    ],
    ids=[
        "type",
        "missing",
        "missing-nested",
        "unknown",
        "unknown-nested",
        "regex-known",
        "regex-other",
        "no-path",
    ],
)
def test_field_error_turns_a_msgspec_message_into_field_and_sentence(
    message: str, expected: FieldError
) -> None:
    assert field_error(message) == expected


def test_customer_id_may_be_left_out(seed: dict[str, Any]) -> None:
    del seed["customer_id"]
    assert decode_new_order(encode(seed)).customer_id is None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 10_000, 100_000])
def test_deep_nesting_is_malformed_before_any_parser_recurses(depth: int) -> None:
    for body in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        with pytest.raises(MalformedJson, match="nested more than"):
            decode_new_order(body)


def test_brackets_inside_strings_do_not_count(seed: dict[str, Any]) -> None:
    seed["items"][0]["name"] = "[" * 120 + '\\"{' * 20
    assert decode_new_order(encode(seed)).items[0].name == seed["items"][0]["name"]


def test_nesting_up_to_the_bound_reaches_the_decoder() -> None:
    with pytest.raises(InvalidInput):  # the right depth, the wrong shape: 422, not 400
        decode_new_order(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
