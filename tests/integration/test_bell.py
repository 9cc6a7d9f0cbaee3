"""The relays are woken after a writing transaction commits: not before, not on rollback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.bell import CHANNEL, OutboxBell
from app.db.engine import transaction
from app.domain.origin import Origin
from app.services.orders import Emitter, create_order
from tests.support.orders import SOURCE, new_order

pytestmark = pytest.mark.anyio


@pytest.fixture
async def listener(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[object]]:
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    await conn.execute(f"LISTEN {CHANNEL}")
    yield conn
    await conn.close()


async def notified(listener: psycopg.AsyncConnection[object], within: float) -> bool:
    async for _ in listener.notifies(timeout=within, stop_after=1):
        return True
    return False


async def test_a_commit_rings_once_it_has_committed(
    engine: AsyncEngine, database_url: str, listener: psycopg.AsyncConnection[object]
) -> None:
    bell = OutboxBell(database_url)
    emitter = Emitter(SOURCE, lambda _: "orders", bell)
    try:
        async with transaction(engine) as conn:
            await create_order(conn, new_order(), emitter=emitter, origin=Origin("api"))
            assert not await notified(listener, within=0.3)  # written, not yet committed
        assert await notified(listener, within=10)
    finally:
        await bell.close()


async def test_a_rollback_does_not_ring(
    engine: AsyncEngine, database_url: str, listener: psycopg.AsyncConnection[object]
) -> None:
    bell = OutboxBell(database_url)
    emitter = Emitter(SOURCE, lambda _: "orders", bell)
    try:
        with pytest.raises(RuntimeError):
            async with transaction(engine) as conn:
                await create_order(conn, new_order(), emitter=emitter, origin=Origin("api"))
                raise RuntimeError("changed its mind")
        assert not await notified(listener, within=0.5)
    finally:
        await bell.close()
