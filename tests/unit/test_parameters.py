"""The list operation's typed parameters, read strictly and explained as rules (no I/O:
no database answers, so a request whose parameters are accepted gets as far as a 503)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from app.http.app import create_app
from app.http.parameters import explain
from scripts.stack.tokens import SigningKey
from tests.support.offline import offline_settings
from tests.support.pipeline import SEED_ORDER

KEY = SigningKey.generate()
MOMENT = "must be an RFC 3339 date-time with an offset, e.g. 2026-01-01T00:00:00Z"
STATUSES = "must be one of pending, confirmed, shipped, delivered, cancelled, failed"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:  # type: ignore[type-arg]
    folder = tmp_path_factory.mktemp("auth")
    settings = offline_settings(KEY, folder, HTTP_MAX_PAGE_SIZE="30")
    with TestClient(create_app(settings)) as found:
        found.headers["Authorization"] = f"Bearer {KEY.customer()}"
        yield found


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("limit=0", "limit", "must be at least 1"),
        ("limit=31", "limit", "must be at most 30"),  # HTTP_MAX_PAGE_SIZE
        ("limit=abc", "limit", "must be an integer"),
        ("status=PENDING", "status", STATUSES),
        ("status=null", "status", "must not be null: leave the parameter out instead"),
        ("customer_id=null", "customer_id", "must not be null: leave the parameter out instead"),
        ("customer_id=42", "customer_id", "must be a UUID"),
        ("status=pending&status=failed", "status", "is given more than once"),
        ("created_from=2026-01-01", "created_from", MOMENT),
        ("created_from=2026-01-01T00:00:00", "created_from", MOMENT),  # no offset
        ("created_to=1700000000", "created_to", MOMENT),  # a timestamp
        (
            "created_from=2026-02-01T00:00:00Z&created_to=2026-01-01T00:00:00%2B01:00",
            "created_to",
            "must not be before created_from",
        ),
        ("cursor=" + "a" * 201, "cursor", "must be at most 200 characters long"),
        ("cursor=abc.def", "cursor", "is not a cursor this API issued"),
    ],
)
def test_a_bad_parameter_is_400_naming_its_rule(
    client: TestClient,
    query: str,
    field: str,
    message: str,  # type: ignore[type-arg]
) -> None:
    response = client.get(f"/api/v1/orders?{query}")
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"] == "urn:orders:problem:invalid-parameter"
    assert problem["errors"][0] == {"field": field, "message": message}


@pytest.mark.parametrize(
    "query",
    [
        "",
        "limit=30&status=cancelled",
        "customer_id=123e4567-e89b-12d3-a456-426614174000",
        "created_from=2026-01-01T00:00:00Z&created_to=2026-01-01T00:00:00.5%2B00:00",
    ],
)
def test_good_parameters_get_as_far_as_the_database(client: TestClient, query: str) -> None:  # type: ignore[type-arg]
    assert client.get(f"/api/v1/orders?{query}").status_code == 503


def test_an_unknown_message_is_kept() -> None:
    assert explain("Expected `array`, got `str`") == "Expected `array`, got `str`"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (b"", "must not be empty"),
        (b"k" * 256, "must be at most 255 characters long"),
        ("ключ".encode(), "must be 1 to 255 printable ASCII characters"),
        (b"tab\there", "must be 1 to 255 printable ASCII characters"),
    ],
)
def test_a_bad_idempotency_key_is_422_naming_the_header(
    client: TestClient,  # type: ignore[type-arg]
    key: bytes,
    message: str,
) -> None:
    headers = [(b"Content-Type", b"application/json"), (b"Idempotency-Key", key)]
    response = client.post("/api/v1/orders", content=json.dumps(SEED_ORDER), headers=headers)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:orders:problem:validation-error"
    assert problem["errors"] == [{"field": "Idempotency-Key", "message": message}]
