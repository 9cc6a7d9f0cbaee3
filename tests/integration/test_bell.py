"""The outbox wake-up (app.db.wakeup): the relays are woken after a writing transaction
commits, not before, not on rollback; and the relay's half hears the writers' half."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import DatabaseSettings, sqlalchemy_url
from app.db.engine import transaction
from app.db.wakeup import CHANNEL, OutboxBell, Wakeup
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


async def test_the_relays_half_hears_the_writers_half(database_url: str) -> None:
    settings = DatabaseSettings(
        url=sqlalchemy_url(database_url), pool_size=1, connect_timeout=5, statement_timeout=10
    )
    wakeup, bell = Wakeup(settings, "test"), OutboxBell(database_url)
    try:
        # A new LISTEN rings once: rows committed meanwhile.
        assert await wakeup.wait(10, after=-math.inf)
        looked = time.monotonic()
        assert not await wakeup.wait(0.3, after=looked)  # then nothing, until a writer rings
        bell.ring()
        assert await wakeup.wait(10, after=looked)
        looked = time.monotonic()
        assert not await wakeup.wait(0.3, after=looked)  # one ring, one wake-up
    finally:
        await bell.close()
        await wakeup.close()


async def test_a_listener_whose_connection_is_killed_listens_again(database_url: str) -> None:
    settings = DatabaseSettings(
        url=sqlalchemy_url(database_url), pool_size=1, connect_timeout=5, statement_timeout=10
    )
    # Its liveness check is far off: it is the socket closing that must be noticed.
    wakeup, bell = Wakeup(settings, "test", check_every=60), OutboxBell(database_url)
    try:
        assert await wakeup.wait(10, after=-math.inf)  # listening
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            killed = await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'test-listen'"
            )
            assert await killed.fetchall() == [(True,)]
        looked = time.monotonic()
        # Back: a new LISTEN rings (rows may have come while it was away)…
        assert await wakeup.wait(20, after=looked)
        looked = time.monotonic()
        bell.ring()
        assert await wakeup.wait(10, after=looked)  # …and it hears the writers again
    finally:
        await bell.close()
        await wakeup.close()


async def test_a_bell_whose_connection_is_killed_rings_again(
    database_url: str, listener: psycopg.AsyncConnection[object]
) -> None:
    bell = OutboxBell(database_url, application_name="test")
    try:
        bell.ring()
        assert await notified(listener, within=10)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            killed = await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'test-bell'"
            )
            assert await killed.fetchall() == [(True,)]
        bell.ring()  # finds its connection dead: says so, reconnects after a moment
        bell.ring()
        assert await notified(listener, within=10)
    finally:
        await bell.close()
