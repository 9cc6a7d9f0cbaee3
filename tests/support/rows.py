"""Counting what a request wrote, in every table."""

from __future__ import annotations

import psycopg

TABLES = (
    "orders",
    "order_items",
    "order_status_history",
    "outbox",
    "processed_events",
    "idempotency_keys",
)


def row_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in TABLES
        }  # type: ignore[index]
