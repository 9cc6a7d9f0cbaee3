"""What the OpenAPI document says about responses: real examples, every error shape."""

from __future__ import annotations

from typing import Any

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example

from app.http.problems import MEDIA_TYPE, Problem

_ORDER: dict[str, Any] = {
    "id": "865ca832-c5c6-44b0-b235-37273c65aa19",
    "customer_id": "123e4567-e89b-12d3-a456-426614174000",
    "email": "customer@example.com",
    "status": "pending",
    "total_amount": 149.97,
    "currency": "USD",
    "items": [
        {
            "product_id": "456e7890-e89b-12d3-a456-426614174001",
            "name": "Test Product",
            "price": 49.99,
            "quantity": 3,
        }
    ],
    "metadata": {"source": "web"},
    "shipping_address": {
        "street": "Main St, 1",
        "city": "Minsk",
        "state": "MI",
        "country": "BY",
        "zip_code": "220030",
    },
    "billing_address": {
        "street": "Main St, 1",
        "city": "Minsk",
        "state": "MI",
        "country": "BY",
        "zip_code": "220030",
    },
    "version": 1,
    "created_at": "2025-09-22T13:09:07.123456Z",
    "updated_at": "2025-09-22T13:09:07.123456Z",
}

SUCCESS_EXAMPLES: dict[str, Any] = {
    "created": {"order": _ORDER, "message": "Order created successfully"},
    "order": {"order": {**_ORDER, "status": "confirmed", "version": 2}},
    "cancelled": {
        "order": {**_ORDER, "status": "cancelled", "version": 2},
        "message": "Order cancelled",
    },
    "page": {"orders": [_ORDER], "next_cursor": "WyIyMDI1LTA5LTIyVDEzOjA5OjA3WiIsIjg2NWNhODMyIl0"},
    "history": {
        "order_id": _ORDER["id"],
        "history": [
            {"version": 1, "from_status": None, "to_status": "pending", "cause": "api",
             "cause_id": "550e8400-e29b-41d4-a716-446655440000", "reason": None,
             "changed_at": "2025-09-22T13:09:07.123456Z"},
            {"version": 2, "from_status": "pending", "to_status": "confirmed", "cause": "event",
             "cause_id": "0b7d2c1e-5d5a-4a52-9a55-2f4f9c0b1a11", "reason": None,
             "changed_at": "2025-09-22T13:09:07.512345Z"},
        ],
    },
}  # fmt: skip

_PROBLEMS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("Malformed JSON, or a bad parameter or header", {
        "type": "urn:orders:problem:malformed-json", "title": "Malformed JSON", "status": 400,
        "detail": "the body is not valid JSON: Input data was truncated",
        "instance": "/api/v1/orders"}),
    404: ("No such order", {
        "type": "urn:orders:problem:order-not-found", "title": "Order not found", "status": 404,
        "detail": "order 865ca832-c5c6-44b0-b235-37273c65aa19 does not exist"}),
    409: ("The status does not allow it, or a request with this Idempotency-Key is in progress", {
        "type": "urn:orders:problem:illegal-transition", "title": "Status change not allowed",
        "status": 409, "detail": "an order that is shipped cannot become cancelled"}),
    413: ("The body is larger than allowed", {
        "type": "urn:orders:problem:payload-too-large", "title": "Request body too large",
        "status": 413, "detail": "Request Entity Too Large"}),
    415: ("The body is not JSON (send Content-Type: application/json)", {
        "type": "urn:orders:problem:unsupported-media-type", "title": "Unsupported media type",
        "status": 415, "detail": "send Content-Type: application/json"}),
    422: ("The request breaks a rule; `errors` names each field", {
        "type": "urn:orders:problem:validation-error", "title": "Invalid request", "status": 422,
        "detail": "The request is not valid.",
        "errors": [{"field": "items[0].price", "message": "must have at most 2 decimals"}]}),
    503: ("The database is unavailable; retry after `Retry-After` seconds", {
        "type": "urn:orders:problem:unavailable", "title": "Service unavailable", "status": 503,
        "detail": "the database is unavailable"}),
}  # fmt: skip


def success(container: type, description: str, example: str) -> ResponseSpec:
    return ResponseSpec(
        container,
        description=description,
        generate_examples=False,
        examples=[Example(summary=example, value=SUCCESS_EXAMPLES[example])],
    )


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            Problem,
            description=_PROBLEMS[status][0],
            media_type=MEDIA_TYPE,
            generate_examples=False,
            examples=[Example(summary=_PROBLEMS[status][1]["title"], value=_PROBLEMS[status][1])],
        )
        for status in statuses
    }
