"""Fixtures shared by the unit tests: the anyio backend and the seed's example order."""

from __future__ import annotations

import json
from typing import Any

import pytest

# The README example, byte for byte: every part of the service must accept it unchanged.
SEED_BODY = (
    b'{"customer_id": "123e4567-e89b-12d3-a456-426614174000", "email": "customer@example.com", '
    b'"items": [{"product_id": "456e7890-e89b-12d3-a456-426614174001", "name": "Test Product", '
    b'"price": 49.99, "quantity": 3}], "currency": "USD", "metadata": {"source": "web"}, '
    b'"shipping_address": {"street": "Main St, 1", "city": "Minsk", "state": "MI", '
    b'"country": "BY", "zip_code": "220030"}, "billing_address": {"street": "Main St, 1", '
    b'"city": "Minsk", "state": "MI", "country": "BY", "zip_code": "220030"}}'
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def seed_body() -> bytes:
    return SEED_BODY


@pytest.fixture
def seed() -> dict[str, Any]:
    """A fresh, mutable copy of the seed body, for tests that change one thing in it."""
    parsed: dict[str, Any] = json.loads(SEED_BODY)
    return parsed
