"""The relay loop against real PostgreSQL, with an in-memory publisher standing in for Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import RelaySettings
from app.db.locks import OUTBOX_SHARDS
from relay.leases import ShardLeases
from relay.loop import Relay
from relay.publisher import Delivery, InMemoryPublisher
from tests.integration.test_outbox import enqueue, message

pytestmark = pytest.mark.anyio
ALL_SHARDS = list(range(OUTBOX_SHARDS))
SETTINGS = RelaySettings(
    batch_size=100, poll_interval=0.1, retention=timedelta(hours=1), metrics_port=0
)


@pytest.fixture
async def conn(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    raw = await engine.connect()
    yield await raw.execution_options(isolation_level="AUTOCOMMIT")
    await raw.close()


def relay(engine: AsyncEngine, publisher: InMemoryPublisher) -> Relay:
    return Relay(engine, publisher, None, SETTINGS, asyncio.Event())


async def test_publishes_in_commit_order_and_marks_published(
    engine: AsyncEngine, conn: AsyncConnection
) -> None:
    sent = [message(f"customer-{i % 3}") for i in range(9)]
    for item in sent:
        await enqueue(engine, item)
    publisher = InMemoryPublisher()
    settled = await relay(engine, publisher).relay_once(conn, ALL_SHARDS)
    assert (settled.claimed, settled.published, settled.failed) == (9, 9, 0)
    assert [m.id for m in publisher.sent] == [m.id for m in sent]
    unpublished = (
        await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
    ).scalar_one()
    assert unpublished == 0


async def test_a_refused_message_is_parked_and_its_key_waits(
    engine: AsyncEngine, conn: AsyncConnection
) -> None:
    poison, follower, bystander = message("k1"), message("k1"), message("k2")
    for item in (poison, follower, bystander):
        await enqueue(engine, item)
    publisher = InMemoryPublisher()
    publisher.refuse[poison.id] = Delivery(poison.id, "too large", permanent=True)
    publisher.refuse[follower.id] = Delivery(follower.id, "held back", permanent=False)
    await relay(engine, publisher).relay_once(conn, ALL_SHARDS)
    publisher.refuse.clear()
    await relay(engine, publisher).relay_once(conn, ALL_SHARDS)
    assert [m.id for m in publisher.sent] == [bystander.id]  # k1 waits behind its parked row
    parked = (
        (await conn.execute(text("SELECT id FROM outbox WHERE parked_at IS NOT NULL")))
        .scalars()
        .all()
    )
    assert parked == [poison.id]


async def test_two_relays_share_the_shards_and_one_takes_all_when_the_other_leaves(
    engine: AsyncEngine,
) -> None:
    first_raw, second_raw = await engine.connect(), await engine.connect()
    first_conn = await first_raw.execution_options(isolation_level="AUTOCOMMIT")
    second_conn = await second_raw.execution_options(isolation_level="AUTOCOMMIT")
    first, second = ShardLeases(first_conn), ShardLeases(second_conn)
    await first.join()
    assert len(first.owned) == OUTBOX_SHARDS
    await second.join()
    await first.rebalance()  # gives half away
    await second.rebalance()  # takes them
    assert len(first.owned) == len(second.owned) == OUTBOX_SHARDS // 2
    assert not first.owned & second.owned
    await second_raw.invalidate()  # its session ends (as the relay's does): its locks go with it
    await second_raw.close()
    await first.rebalance()
    assert len(first.owned) == OUTBOX_SHARDS
    await first_raw.invalidate()
    await first_raw.close()


async def test_prunes_published_rows_past_retention(
    engine: AsyncEngine, conn: AsyncConnection
) -> None:
    await enqueue(engine, message("a"), message("b"))
    publisher = InMemoryPublisher()
    loop = relay(engine, publisher)
    await loop.relay_once(conn, ALL_SHARDS)
    await conn.execute(text("UPDATE outbox SET published_at = published_at - interval '2 hours'"))
    await loop._prune(conn)
    assert (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one() == 0


async def test_run_stops_when_asked(engine: AsyncEngine) -> None:
    await enqueue(engine, message("a"))
    publisher = InMemoryPublisher()
    stop = asyncio.Event()
    running = asyncio.create_task(Relay(engine, publisher, None, SETTINGS, stop).run())
    for _ in range(200):  # bounded wait (≤ 4 s) for the row to go out
        if publisher.sent:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert len(publisher.sent) == 1
