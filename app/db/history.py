"""The status history: one row per transition, numbered by the order's version (written
with the change itself: app.db.orders)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import order_status_history as history
from app.domain.order import Transition
from app.domain.status import Status


async def list_transitions(conn: AsyncConnection, order_id: UUID) -> list[Transition]:
    query = select(history).where(history.c.order_id == order_id).order_by(history.c.version)
    return [
        Transition(
            version=row.version,
            from_status=Status(row.from_status) if row.from_status else None,
            to_status=Status(row.to_status),
            cause=row.cause,
            cause_id=row.cause_id,
            reason=row.reason,
            changed_at=row.changed_at,
            actor=row.actor,
        )
        for row in await conn.execute(query)
    ]
