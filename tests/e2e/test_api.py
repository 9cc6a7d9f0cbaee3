"""The order API over real HTTP against real PostgreSQL: idempotency, listing, cancel, history."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.support.pipeline import SEED_ORDER, Pipeline
from tests.support.rows import row_counts


def order_for(customer_id: str | None = None, price: float = 49.99) -> dict[str, Any]:
    body = copy.deepcopy(SEED_ORDER)
    body["customer_id"] = customer_id or str(uuid.uuid4())
    body["items"][0]["price"] = price
    return body


def create(client: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return client.post("/api/v1/orders", json=body, headers=headers)


def test_the_seed_request_works_unchanged(api: Pipeline) -> None:
    with api.client() as client:
        response = create(client, SEED_ORDER)
    assert response.status_code == 201
    order = response.json()["order"]
    assert order["total_amount"] == 149.97
    assert order["shipping_address"] == SEED_ORDER["shipping_address"]
    assert order["metadata"] == {"source": "web"}


def test_a_retry_with_the_same_key_replays_the_same_order(
    api: Pipeline, module_database_url: str
) -> None:
    key = str(uuid.uuid4())
    body = order_for()
    with api.client() as client:
        first = create(client, body, **{"Idempotency-Key": key})
        before = row_counts(module_database_url)
        again = create(client, body, **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.json()["order"]["id"] == first.json()["order"]["id"]
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert row_counts(module_database_url) == before  # no second order, no second event


def test_the_same_key_with_another_body_is_refused(api: Pipeline, module_database_url: str) -> None:
    key = str(uuid.uuid4())
    with api.client() as client:
        assert create(client, order_for(), **{"Idempotency-Key": key}).status_code == 201
        before = row_counts(module_database_url)
        response = create(client, order_for(price=1.00), **{"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:orders:problem:idempotency-key-reused"
    assert row_counts(module_database_url) == before


def test_key_order_and_spacing_of_the_json_do_not_make_it_another_request(api: Pipeline) -> None:
    key = str(uuid.uuid4())
    body = order_for()
    reordered = dict(reversed(list(body.items())))
    with api.client() as client:
        first = create(client, body, **{"Idempotency-Key": key})
        second = client.post(
            "/api/v1/orders",
            content=json.dumps(reordered, indent=4).encode(),
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        )
    assert second.status_code == 201
    assert second.json()["order"]["id"] == first.json()["order"]["id"]


def test_concurrent_requests_with_one_key_create_exactly_one_order(
    api: Pipeline, module_database_url: str
) -> None:
    key = str(uuid.uuid4())
    body = order_for()
    start = threading.Barrier(16)

    def attempt(_: int) -> httpx.Response:
        with api.client() as client:
            start.wait(10)
            return create(client, body, **{"Idempotency-Key": key})

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(attempt, range(16)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    created_ids = {r.json()["order"]["id"] for r in responses if r.status_code == 201}
    assert len(created_ids) == 1
    assert all(
        r.json()["type"] == "urn:orders:problem:idempotency-key-in-flight"
        for r in responses
        if r.status_code == 409
    )
    with api.client() as client:
        page = client.get("/api/v1/orders", params={"customer_id": body["customer_id"]}).json()
    assert len(page["orders"]) == 1


def test_listing_pages_through_a_customers_orders_in_creation_order(api: Pipeline) -> None:
    customer = str(uuid.uuid4())
    with api.client() as client:
        made = [create(client, order_for(customer)).json()["order"]["id"] for _ in range(5)]
        seen: list[str] = []
        cursor = None
        for _ in range(5):  # bounded: 5 orders, pages of 2
            params: dict[str, Any] = {"customer_id": customer, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/v1/orders", params=params).json()
            seen += [order["id"] for order in page["orders"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == made


def test_listing_filters_by_status_and_time(api: Pipeline) -> None:
    customer = str(uuid.uuid4())
    with api.client() as client:
        first = create(client, order_for(customer)).json()["order"]
        second = create(client, order_for(customer)).json()["order"]
        client.post(f"/api/v1/orders/{second['id']}/cancel")
        cancelled = client.get(
            "/api/v1/orders", params={"customer_id": customer, "status": "cancelled"}
        ).json()
        since_second = client.get(
            "/api/v1/orders", params={"customer_id": customer, "created_from": second["created_at"]}
        ).json()
        before_second = client.get(
            "/api/v1/orders", params={"customer_id": customer, "created_to": second["created_at"]}
        ).json()
    assert [o["id"] for o in cancelled["orders"]] == [second["id"]]
    assert [o["id"] for o in since_second["orders"]] == [second["id"]]
    assert [o["id"] for o in before_second["orders"]] == [first["id"]]


def test_cancel_then_history(api: Pipeline) -> None:
    with api.client() as client:
        order = create(client, order_for(), **{"X-Request-ID": "req-create"}).json()["order"]
        cancelled = client.post(
            f"/api/v1/orders/{order['id']}/cancel",
            json={"reason": "changed my mind"},
            headers={"X-Request-ID": "req-cancel"},
        )
        again = client.post(f"/api/v1/orders/{order['id']}/cancel")
        history = client.get(f"/api/v1/orders/{order['id']}/history").json()
    assert cancelled.status_code == 200
    assert cancelled.json()["order"]["status"] == "cancelled"
    assert cancelled.json()["order"]["version"] == 2
    assert again.status_code == 409
    assert again.json()["type"] == "urn:orders:problem:illegal-transition"
    assert [
        (h["from_status"], h["to_status"], h["cause"], h["cause_id"]) for h in history["history"]
    ] == [
        (None, "pending", "api", "req-create"),
        ("pending", "cancelled", "api", "req-cancel"),
    ]
    assert history["history"][1]["reason"] == "changed my mind"


def test_unknown_orders_are_404(api: Pipeline) -> None:
    missing = str(uuid.uuid4())
    with api.client() as client:
        for response in (
            client.get(f"/api/v1/orders/{missing}"),
            client.post(f"/api/v1/orders/{missing}/cancel"),
            client.get(f"/api/v1/orders/{missing}/history"),
        ):
            assert response.status_code == 404
            assert response.json()["type"] == "urn:orders:problem:order-not-found"


def test_request_id_is_echoed_or_made_up(api: Pipeline) -> None:
    with api.client() as client:
        given = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
        made_up = client.get("/health/live")
    assert given.headers["x-request-id"] == "abc-123"
    assert uuid.UUID(made_up.headers["x-request-id"])


def test_health(api: Pipeline) -> None:
    with api.client() as client:
        assert client.get("/health/live").json() == {"status": "ok"}
        assert client.get("/health/ready").json() == {"status": "ready"}


def test_docs_page_is_served_offline_and_lists_every_endpoint(api: Pipeline) -> None:
    with api.client() as client:
        page = client.get("/schema/docs")
        spec = client.get("/schema/openapi.json").json()
        assets = [
            client.get(f"/schema/assets/{name}")
            for name in ("swagger-ui-bundle.js", "swagger-ui.css")
        ]
    assert page.status_code == 200
    assert "/schema/assets/swagger-ui-bundle.js" in page.text
    assert (
        "https://" not in page.text and "http://" not in page.text
    )  # nothing fetched from elsewhere
    assert all(asset.status_code == 200 and len(asset.content) > 10_000 for asset in assets)
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) >= {
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/cancel",
        "/api/v1/orders/{order_id}/history",
        "/health/live",
        "/health/ready",
    }
