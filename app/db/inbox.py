"""Processed events: the consumer's memory of what it has already applied."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import msgspec
from sqlalchemy import bindparam, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import processed_events

Outcome = Literal["applied", "rejected", "ignored"]
DETAIL_MAX = 2000


class Receipt(msgspec.Struct, frozen=True):
    """Which event this was and where it was read from."""

    source: str
    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int


_CLAIM = (
    insert(processed_events)
    .on_conflict_do_nothing(index_elements=["source", "event_id"])
    .returning(processed_events.c.event_id)
)
_SETTLE = (
    update(processed_events)
    .where(processed_events.c.source == bindparam("b_source"))
    .where(processed_events.c.event_id == bindparam("b_event_id"))
    .values(outcome=bindparam("b_outcome"), detail=bindparam("b_detail"))
)


async def claim(
    conn: AsyncConnection,
    receipt: Receipt,
    *,
    order_id: UUID | None,
    outcome: Outcome = "applied",
    detail: str | None = None,
) -> bool:
    """Record the event (as applied, unless told otherwise); False if it was recorded
    before (a duplicate).

    Call this first in the transaction that applies the event: the primary key
    makes a concurrent duplicate wait here, then find the row and back off. If
    the event ends up not applied, `settle` records the real outcome.
    """
    values = {
        "source": receipt.source,
        "event_id": receipt.event_id,
        "event_type": receipt.event_type,
        "order_id": order_id,
        "outcome": outcome,
        "detail": None if detail is None else detail[:DETAIL_MAX],
        "topic": receipt.topic,
        "kafka_partition": receipt.partition,
        "kafka_offset": receipt.offset,
    }
    return (await conn.execute(_CLAIM, values)).first() is not None


async def settle(conn: AsyncConnection, receipt: Receipt, outcome: Outcome, detail: str) -> None:
    await conn.execute(
        _SETTLE,
        {
            "b_source": receipt.source,
            "b_event_id": receipt.event_id,
            "b_outcome": outcome,
            "b_detail": detail[:DETAIL_MAX],
        },
    )
