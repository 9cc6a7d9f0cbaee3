"""The status history: one row per transition, numbered by the order's version."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import order_status_history as history
from app.domain.order import Transition
from app.domain.status import Status

_INSERT = history.insert()


async def record_transition(conn: AsyncConnection, order_id: UUID, entry: Transition) -> None:
    await conn.execute(
        _INSERT,
        {
            "order_id": order_id,
            "version": entry.version,
            "from_status": entry.from_status.value if entry.from_status else None,
            "to_status": entry.to_status.value,
            "cause": entry.cause,
            "cause_id": entry.cause_id,
            "reason": entry.reason,
            "changed_at": entry.changed_at,
            "actor": entry.actor,
        },
    )


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
