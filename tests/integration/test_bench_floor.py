"""The floor's own parts against real PostgreSQL: the floor app writes what the API's create
writes, and the drain's database side takes every claimable row once, in order."""

from __future__ import annotations

import psycopg
import pytest

from bench import relay_drain
from bench.floor import BATCH, claim_and_mark
from bench.floor_app import Connections

pytestmark = pytest.mark.anyio


async def test_the_floor_app_writes_an_order_its_item_history_and_event(database_url: str) -> None:
    connections = Connections()
    await connections.open(database_url, 1)
    try:
        first, second = await connections.create(), await connections.create()
    finally:
        await connections.close()
    assert first != second
    with psycopg.connect(database_url) as conn:
        for table, column in [
            ("orders", "id"),
            ("order_items", "order_id"),
            ("order_status_history", "order_id"),
            ("outbox", "subject::uuid"),
        ]:
            found = conn.execute(
                f"SELECT count(*) FROM {table} WHERE {column} = %s", (first,)
            ).fetchone()
            assert found == (1,), table


def test_the_drains_database_side_claims_every_row_once_and_leaves_parked_ones(
    database_url: str,
) -> None:
    rows = BATCH * 2 + 7  # three claims, the last one short
    with psycopg.connect(database_url, autocommit=True) as conn:
        relay_drain.fill(conn, "orders.floor", rows + 1, 10)
        conn.execute(
            "UPDATE outbox SET parked_at = now() WHERE seq = (SELECT max(seq) FROM outbox)"
        )
        assert claim_and_mark(conn, rows) > 0
        left = conn.execute(
            "SELECT count(*) FILTER (WHERE published_at IS NULL),"
            "       count(DISTINCT published_at) FROM outbox"
        ).fetchone()
    assert left == (1, 3)  # the parked row alone, and one mark a claim
