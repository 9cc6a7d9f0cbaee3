"""The relay loop against real PostgreSQL, with an in-memory publisher standing in for Kafka."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import RelaySettings
from app.db import leases as lease_rows
from app.db import outbox
from app.db.locks import OUTBOX_SHARDS
from relay.housekeeping import Housekeeping
from relay.leases import ShardLeases
from relay.loop import Relay
from relay.publisher import Delivery
from relay.testing import InMemoryPublisher, Polling, relay_once
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
    stop = asyncio.Event()
    return Relay(engine, publisher, Polling(stop), SETTINGS, stop)


async def test_publishes_in_commit_order_and_marks_published(
    engine: AsyncEngine, conn: AsyncConnection
) -> None:
    sent = [message(f"customer-{i % 3}") for i in range(9)]
    for item in sent:
        await enqueue(engine, item)
    publisher = InMemoryPublisher()
    settled = await relay_once(relay(engine, publisher), conn)
    assert (settled.claimed, settled.published, settled.failed) == (9, 9, 0)
    for key in {m.key for m in sent}:  # each key's events in the order they were committed
        assert [m.id for m in publisher.sent if m.key == key] == [
            m.id for m in sent if m.key == key
        ]
    assert len(publisher.sent) == len(sent)
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
    await relay_once(relay(engine, publisher), conn)
    publisher.refuse.clear()
    await relay_once(relay(engine, publisher), conn)
    assert [m.id for m in publisher.sent] == [bystander.id]  # k1 waits behind its parked row
    parked = (
        (await conn.execute(text("SELECT id FROM outbox WHERE parked_at IS NOT NULL")))
        .scalars()
        .all()
    )
    assert parked == [poison.id]


async def test_rows_claimed_beside_a_batch_wait_when_a_row_of_their_key_did_not_go_out(
    engine: AsyncEngine, conn: AsyncConnection
) -> None:
    """A batch claimed beside one in flight may hold later rows of its keys: when a row of
    such a key is refused, they are not sent, and go out after it, in commit order."""
    k1, k2, j1, k3, k4 = message("k"), message("k"), message("j"), message("k"), message("k")
    await enqueue(engine, k1, k2, j1, k3, k4)
    publisher = InMemoryPublisher()
    publisher.refuse[k2.id] = Delivery(k2.id, "broker busy", permanent=False)
    stop = asyncio.Event()
    loop = Relay(
        engine, publisher, Polling(stop), msgspec.structs.replace(SETTINGS, batch_size=2), stop
    )
    leases = ShardLeases(conn, uuid.uuid4(), name="test", ttl=60)
    await leases.rebalance()
    try:
        in_flight = await loop.claim_and_send(conn, leases)  # k1 and k2, which is refused
        claimed = await loop.claim(conn, leases, in_flight)
        assert claimed is not None
        assert [c.message.id for c in claimed.messages] == [j1.id, k3.id]
        publisher.refuse.clear()
        in_flight, settled = await loop.advance(conn, leases, in_flight, claimed)
        assert (settled.published, settled.failed) == (1, 1)
        assert in_flight is not None
        assert [c.message.id for c in in_flight.claimed.messages] == [j1.id]  # k3 waits
        for _ in range(10):  # the loop's steps until nothing is left
            if in_flight is None:
                break
            claimed = await loop.claim(conn, leases, in_flight)
            in_flight, _ = await loop.advance(conn, leases, in_flight, claimed)
        assert in_flight is None
    finally:
        await leases.leave()
    assert [m.id for m in publisher.sent if m.key == "k"] == [k1.id, k2.id, k3.id, k4.id]
    assert [m.id for m in publisher.sent if m.key == "j"] == [j1.id]
    left = await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
    assert left.scalar_one() == 0


async def relay_leases(
    engine: AsyncEngine, ttl: float, clock: Callable[[], float] = time.monotonic
) -> tuple[ShardLeases, AsyncConnection]:
    conn = await (await engine.connect()).execution_options(isolation_level="AUTOCOMMIT")
    return ShardLeases(conn, uuid.uuid4(), name="test", ttl=ttl, clock=clock), conn


async def test_two_relays_share_the_shards_and_one_takes_all_when_the_other_leaves(
    engine: AsyncEngine,
) -> None:
    (first, first_conn), (second, second_conn) = (
        await relay_leases(engine, ttl=30),
        await relay_leases(engine, ttl=30),
    )
    gained = (await first.rebalance()).gained
    assert len(first.owned) == OUTBOX_SHARDS
    assert set(gained.values()) == {1}  # first lease of each shard: epoch 1
    await second.rebalance()  # joins: nothing free yet
    change = await first.rebalance()  # gives half away
    assert len(change.lost) == OUTBOX_SHARDS // 2
    taken = await second.rebalance()  # takes them
    assert taken.previous == {}  # handed back between batches: no one to fence
    assert len(first.owned) == len(second.owned) == OUTBOX_SHARDS // 2
    assert not first.owned.keys() & second.owned.keys()
    assert set(second.owned.values()) == {2}  # each taken again: a new epoch
    await second.leave()  # a clean stop hands everything back at once
    await first.rebalance()
    assert len(first.owned) == OUTBOX_SHARDS
    await first_conn.close()
    await second_conn.close()


async def test_a_relay_that_stops_renewing_loses_its_shards_after_the_ttl(
    engine: AsyncEngine,
) -> None:
    now = [0.0]
    frozen, frozen_conn = await relay_leases(engine, ttl=1.0, clock=lambda: now[0])
    live, live_conn = await relay_leases(engine, ttl=1.0)
    await frozen.rebalance()
    epochs = dict(frozen.owned)
    assert frozen.shards == ALL_SHARDS
    await enqueue(engine, message("k"))
    assert await outbox.claim_batch(frozen_conn, ALL_SHARDS, 10, owner=frozen._id)
    # The frozen relay renews no more. Until its leases expire the live one gets nothing…
    assert not (await live.rebalance()).gained
    now[0] = 0.95  # …and locally the frozen one stops trusting them before they expire.
    assert frozen.shards == []
    started = time.monotonic()
    previous: dict[int, uuid.UUID] = {}
    while len(live.owned) < OUTBOX_SHARDS:
        assert time.monotonic() - started < 3.0, "the expired leases were not taken"
        previous.update((await live.rebalance()).previous)
        await asyncio.sleep(0.1)
    # Each was taken after it expired: the live relay learns whose producer to fence.
    assert previous == dict.fromkeys(range(OUTBOX_SHARDS), frozen.relay_id)
    assert time.monotonic() - started >= 0.5  # not before the ttl ran out
    assert all(live.owned[shard] == epoch + 1 for shard, epoch in epochs.items())
    # The database refuses the frozen relay's claims as well: its leases are gone.
    assert not await outbox.claim_batch(frozen_conn, ALL_SHARDS, 10, owner=frozen._id)
    assert await outbox.claim_batch(live_conn, ALL_SHARDS, 10, owner=live._id)
    # When it wakes, it learns what it lost and takes only its fair share of what is free.
    now[0] = 10.0
    change = await frozen.rebalance()
    assert change.lost == frozenset(range(OUTBOX_SHARDS))
    assert not change.gained
    await frozen_conn.close()
    await live_conn.close()


async def test_leases_refuse_what_is_not_a_shard(engine: AsyncEngine) -> None:
    """Hostile input: shards out of range, a huge name, a negative limit."""
    leases_, conn = await relay_leases(engine, ttl=5)
    assert await lease_rows.take(conn, uuid.uuid4(), [-1, 32, 10**6], 5, timedelta(seconds=5)) == {}
    assert await lease_rows.take(conn, uuid.uuid4(), [1], -3, timedelta(seconds=5)) == {}
    membership, _ = await lease_rows.heartbeat(conn, uuid.uuid4(), "x" * 10_000, timedelta(1))
    assert membership.relays == 1
    assert leases_.shards == []
    await conn.close()


async def test_prunes_published_rows_past_retention(
    engine: AsyncEngine, conn: AsyncConnection
) -> None:
    await enqueue(engine, message("a"), message("b"))
    publisher = InMemoryPublisher()
    loop = relay(engine, publisher)
    await relay_once(loop, conn)
    await conn.execute(text("UPDATE outbox SET published_at = published_at - interval '2 hours'"))
    await Housekeeping(engine, SETTINGS, asyncio.Event()).prune(conn)
    assert (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one() == 0


async def test_run_stops_when_asked(engine: AsyncEngine) -> None:
    await enqueue(engine, message("a"))
    publisher = InMemoryPublisher()
    stop = asyncio.Event()
    running = asyncio.create_task(Relay(engine, publisher, Polling(stop), SETTINGS, stop).run())
    for _ in range(200):  # bounded wait (≤ 4 s) for the row to go out
        if publisher.sent:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert len(publisher.sent) == 1
