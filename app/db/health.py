"""Whether the database answers: the readiness probe's one question."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.errors import Unavailable


async def ping(engine: AsyncEngine, *, timeout: float) -> None:
    """Raise Unavailable unless `SELECT 1` comes back within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise Unavailable("the database does not answer") from exc
