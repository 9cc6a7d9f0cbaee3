"""The floor's own parts against real PostgreSQL: the floor app writes what the API's create
writes (and nothing for a body that is not JSON), and the drain's database side takes every
claimable row once, in order."""

from __future__ import annotations

import psycopg
import pytest
from litestar.testing import TestClient

from bench import relay_drain
from bench.floor import claim_and_mark
from bench.floor_app import Connections, serve_app

BATCH = 2_000


def count(database_url: str, table: str, column: str, value: str) -> int:
    with psycopg.connect(database_url) as conn:
        found = conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = %s", (value,))
        row = found.fetchone()
    return int(row[0]) if row else 0


@pytest.mark.anyio
async def test_the_floor_app_writes_an_order_its_item_history_and_event(database_url: str) -> None:
    connections = Connections()
    await connections.open(database_url, 1)
    try:
        first, second = await connections.create(), await connections.create()
    finally:
        await connections.close()
    assert first != second
    for table, column in [
        ("orders", "id::text"),
        ("order_items", "order_id::text"),
        ("order_status_history", "order_id::text"),
        ("outbox", "subject"),
    ]:
        assert count(database_url, table, column, first) == 1, table


@pytest.mark.parametrize(
    "body",
    [b"{", b"not json", b"\xff\xfe", b"[" * 10_000, b'{"a": 1} trailing', b""],
    ids=["unclosed", "text", "not-utf8", "deep", "trailing", "empty"],
)
def test_a_body_that_is_not_json_is_refused_and_writes_nothing(
    database_url: str, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hostile input on the floor app's one route: a 400, not a 500, and no order."""
    monkeypatch.setenv("FLOOR_DATABASE_URL", database_url)
    with TestClient(serve_app()) as client:
        refused = client.post("/api/v1/orders", content=body)
        assert refused.status_code == 400, refused.text
        assert count(database_url, "orders", "true::text", "true") == 0
        created = client.post("/api/v1/orders", json={"customer_id": "x"})
        assert created.status_code == 201
        assert count(database_url, "orders", "id::text", created.json()["id"]) == 1


def test_the_drains_database_side_claims_every_row_once_and_leaves_parked_ones(
    database_url: str,
) -> None:
    rows = BATCH * 2 + 7  # three claims, the last one short
    with psycopg.connect(database_url, autocommit=True) as conn:
        relay_drain.fill(conn, "orders.floor", rows + 1, 10)
        conn.execute(
            "UPDATE outbox SET parked_at = now() WHERE seq = (SELECT max(seq) FROM outbox)"
        )
        assert claim_and_mark(conn, rows, BATCH) > 0
        left = conn.execute(
            "SELECT count(*) FILTER (WHERE published_at IS NULL),"
            "       count(DISTINCT published_at) FROM outbox"
        ).fetchone()
    assert left == (1, 3)  # the parked row alone, and one mark a claim
