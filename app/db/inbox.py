"""Processed events: the consumer's memory of what it has already applied."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import msgspec
from sqlalchemy import bindparam, func, literal, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql import Insert, Select

from app.db import direct
from app.db.orders import LOCK_ORDER, LockedOrder, locked_order
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


# The columns a receipt's row sets (`_receipt_row`'s keys); processed_at is the default.
_RECEIPT_COLUMNS = tuple(c.name for c in processed_events.c if c.name != "processed_at")


def _insert_receipt() -> Insert:
    """The receipt's row, its values bound as `r_{column}` (`_bound`); nothing if it is
    there already (a duplicate), else its event_id returned."""
    return (
        insert(processed_events)
        .values(
            {
                name: bindparam(f"r_{name}", type_=processed_events.c[name].type)
                for name in _RECEIPT_COLUMNS
            }
        )
        .on_conflict_do_nothing(index_elements=["source", "event_id"])
        .returning(processed_events.c.event_id)
    )


def _claim_and_lock() -> Select[Any]:
    """The receipt claimed (as applied) and the order locked, in one round trip: `fresh`
    is 1 if the receipt is new, and the order's columns are NULL if there is no order."""
    claim = _insert_receipt().cte("claim")
    locked = LOCK_ORDER.lateral("locked")
    fresh = select(func.count()).select_from(claim).scalar_subquery().label("fresh")
    anchor = select(literal(1).label("one")).subquery("anchor")
    return select(fresh, locked).select_from(anchor.outerjoin(locked, true()))


# Run for every event: sent through psycopg itself (`app.db.direct`).
_CLAIM = direct.Compiled(_insert_receipt())
_CLAIM_AND_LOCK = direct.Compiled(_claim_and_lock())
_SETTLE = direct.Compiled(
    update(processed_events)
    .where(processed_events.c.source == bindparam("b_source"))
    .where(processed_events.c.event_id == bindparam("b_event_id"))
    .values(outcome=bindparam("b_outcome"), detail=bindparam("b_detail"))
)


async def claim(
    conn: direct.Connection,
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
    values = _bound(_receipt_row(receipt, order_id, outcome, detail))
    return await direct.fetch_one(conn, _CLAIM, values) is not None


def _bound(row: dict[str, object]) -> dict[str, object]:
    return {f"r_{name}": value for name, value in row.items()}


def _receipt_row(
    receipt: Receipt, order_id: UUID | None, outcome: Outcome, detail: str | None
) -> dict[str, object]:
    """The `processed_events` row that records `receipt`."""
    return {
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


async def claim_and_lock(
    conn: direct.Connection, receipt: Receipt, order_id: UUID
) -> LockedOrder | Literal[False] | None:
    """`claim` (as applied) and the order's row locked (`orders.LOCK_ORDER`), together:
    False if the receipt was recorded before (a duplicate), else the order as locked
    (None: no such order). A concurrent duplicate waits on the receipt's key, as with
    `claim`, and then finds it taken."""
    values = {**_bound(_receipt_row(receipt, order_id, "applied", None)), "order_id": order_id}
    row = await direct.fetch_mapping(conn, _CLAIM_AND_LOCK, values)
    if row is None:
        raise RuntimeError("the claim-and-lock statement returned no row")  # it always does one
    if not row["fresh"]:
        return False
    return None if row["id"] is None else locked_order(row)


async def settle(conn: direct.Connection, receipt: Receipt, outcome: Outcome, detail: str) -> None:
    await direct.execute(
        conn,
        _SETTLE,
        {
            "b_source": receipt.source,
            "b_event_id": receipt.event_id,
            "b_outcome": outcome,
            "b_detail": detail[:DETAIL_MAX],
        },
    )
