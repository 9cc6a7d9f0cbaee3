"""The outbox against real PostgreSQL: numbering in commit order, claims, marks, parking, pruning,
and the SQL an operator uses to inspect it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import msgspec
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db import outbox
from app.db.engine import transaction
from app.db.locks import OUTBOX_SHARDS
from app.db.tables import outbox as outbox_table
from app.events.message import OutboxMessage

pytestmark = pytest.mark.anyio
ALL_SHARDS = list(range(OUTBOX_SHARDS))


def message(key: str, topic: str = "orders") -> OutboxMessage:
    return OutboxMessage(
        id=uuid.uuid4(),
        topic=topic,
        key=key,
        event_type="order.created",
        subject=str(uuid.uuid4()),
        payload=b'{"total_amount": 149.97}',
        headers={"ce_type": "order.created"},
    )


# A message written as the writers write it (in their statements, `app.db.orders`).
_ADD = outbox.insert_message("m_")


async def add(conn: AsyncConnection, item: OutboxMessage) -> None:
    await conn.execute(_ADD, outbox.bound(item, "m_"))


async def enqueue(engine: AsyncEngine, *messages: OutboxMessage) -> None:
    async with transaction(engine) as conn:
        for item in messages:
            await add(conn, item)


async def autocommit(engine: AsyncEngine) -> AsyncConnection:
    conn = await engine.connect()
    return await conn.execution_options(isolation_level="AUTOCOMMIT")


async def test_payload_is_stored_and_returned_byte_for_byte(engine: AsyncEngine) -> None:
    sent = message("k")
    await enqueue(engine, sent)
    conn = await autocommit(engine)
    try:
        [claimed] = await outbox.claim_batch(conn, ALL_SHARDS, 10)
    finally:
        await conn.close()
    assert claimed.message == sent  # what goes to Kafka is what was written, byte for byte
    assert claimed.attempts == 0  # claiming writes nothing; failures are counted


async def test_a_payload_of_any_text_and_spacing_comes_back_unchanged(engine: AsyncEngine) -> None:
    """The claim carries payloads inside its JSON answer (as base64): long, non-ASCII and
    oddly spaced values, and headers with quotes, must come out as they went in."""
    payloads = [
        '{ "name" :"Äpfel — 🍎",\n\t"note": "\\"quoted\\" \\u00e9" }'.encode(),
        b'{"items": [' + b'{"name": "x", "price": 1.5},' * 400 + b"{}]}",
        b"[]",
    ]
    sent = [
        msgspec.structs.replace(message(f"k{i}"), payload=p, headers={"ce_x": 'a "b" \\ c'})
        for i, p in enumerate(payloads)
    ]
    await enqueue(engine, *sent)
    conn = await autocommit(engine)
    try:
        claimed = await outbox.claim_batch(conn, ALL_SHARDS, 10)
    finally:
        await conn.close()
    assert [c.message for c in claimed] == sent


async def test_one_key_is_numbered_in_commit_order(engine: AsyncEngine) -> None:
    first = await engine.connect()
    await first.begin()
    await add(first, message("customer-1"))

    async def second_writer() -> None:
        await enqueue(engine, message("customer-1"))

    second = asyncio.create_task(second_writer())
    # The second writer of the key waits on the first's lock, so it cannot take a number yet.
    async with engine.connect() as probe:
        waiting = await _wait_for_lock_waiter(probe)
    assert waiting
    assert not second.done()
    await first.commit()
    await first.close()
    await asyncio.wait_for(second, 10)

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(outbox_table.c.seq, outbox_table.c.created_at).order_by(outbox_table.c.seq)
            )
        ).all()
    assert len(rows) == 2
    assert rows[0].created_at < rows[1].created_at  # the first committed got the lower number


async def _wait_for_lock_waiter(conn: AsyncConnection) -> bool:
    """Poll pg_stat_activity (bounded: 4 s) until some session waits on a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    for _ in range(200):
        if (await conn.execute(query)).scalar_one() > 0:
            return True
        await conn.rollback()
        await asyncio.sleep(0.02)
    return False


async def test_different_keys_do_not_wait_for_each_other(engine: AsyncEngine) -> None:
    first = await engine.connect()
    await first.begin()
    await add(first, message("customer-1"))
    await asyncio.wait_for(enqueue(engine, message("customer-2")), 5)
    await first.rollback()
    await first.close()


async def test_claims_in_sequence_and_skip_rows_another_relay_holds(engine: AsyncEngine) -> None:
    await enqueue(engine, *[message(f"key-{i}") for i in range(6)])
    holder = await engine.connect()
    await holder.begin()
    held = (
        (await holder.execute(text("SELECT id FROM outbox ORDER BY seq LIMIT 2 FOR UPDATE")))
        .scalars()
        .all()
    )
    conn = await autocommit(engine)
    try:
        claimed = await outbox.claim_batch(conn, ALL_SHARDS, 10)
    finally:
        await conn.close()
        await holder.rollback()
        await holder.close()
    assert len(claimed) == 4
    assert not {c.message.id for c in claimed} & set(held)
    assert [c.seq for c in claimed] == sorted(c.seq for c in claimed)


async def test_claims_only_the_given_shards(engine: AsyncEngine) -> None:
    await enqueue(engine, *[message(f"key-{i}") for i in range(40)])
    async with engine.connect() as conn:
        shards = dict((await conn.execute(text("SELECT id, shard FROM outbox"))).all())
    mine = sorted(set(shards.values()))[:2]
    conn = await autocommit(engine)
    try:
        claimed = await outbox.claim_batch(conn, mine, 100)
    finally:
        await conn.close()
    assert claimed
    assert {shards[c.message.id] for c in claimed} <= set(mine)
    assert len(claimed) == sum(1 for shard in shards.values() if shard in mine)


async def test_published_rows_are_not_claimed_again(engine: AsyncEngine) -> None:
    await enqueue(engine, message("a"), message("b"))
    conn = await autocommit(engine)
    try:
        claimed = await outbox.claim_batch(conn, ALL_SHARDS, 10)
        await outbox.mark_published(conn, [c.message.id for c in claimed])
        assert await outbox.claim_batch(conn, ALL_SHARDS, 10) == []
    finally:
        await conn.close()


async def test_a_parked_row_holds_back_its_key_only(engine: AsyncEngine) -> None:
    poison, after, other = message("k1"), message("k1"), message("k2")
    await enqueue(engine, poison)
    await enqueue(engine, after, other)
    conn = await autocommit(engine)
    try:
        await outbox.claim_batch(conn, ALL_SHARDS, 1)
        await outbox.record_failure(conn, poison.id, "topic 'x' does not exist", park=True)
        assert [c.message.id for c in await outbox.claim_batch(conn, ALL_SHARDS, 10)] == [other.id]
        await outbox.mark_published(conn, [other.id])
        failures = (
            await conn.execute(text("SELECT id, last_error, parked_at FROM outbox_failures"))
        ).all()
        assert [(f.id, f.last_error) for f in failures] == [(poison.id, "topic 'x' does not exist")]
        assert (
            await conn.execute(text("SELECT outbox_unpark(:id)"), {"id": poison.id})
        ).scalar_one()
        assert [c.message.id for c in await outbox.claim_batch(conn, ALL_SHARDS, 10)] == [
            poison.id,
            after.id,
        ]
    finally:
        await conn.close()


async def test_a_claim_beside_a_batch_in_flight_takes_what_follows_its_rows(
    engine: AsyncEngine,
) -> None:
    """Beside a batch in flight its rows are left out, and the claim takes the rows after
    them, the later rows of its keys included, in commit order; the ids come back as one
    literal that the mark and the next claim take as they are."""
    first = [message("one") for _ in range(3)]
    then = [message("one"), message("two"), message("one")]
    await enqueue(engine, *first, *then)
    conn = await autocommit(engine)
    try:
        in_flight = await outbox.claim(conn, ALL_SHARDS, 3)
        assert [c.message.id for c in in_flight.messages] == [m.id for m in first]
        assert in_flight.more  # stopped at its limit
        assert in_flight.ids == outbox.ids_literal(m.id for m in first)
        beside = await outbox.claim(conn, ALL_SHARDS, 2, in_flight.ids)
        assert [c.message.id for c in beside.messages] == [then[0].id, then[1].id]
        assert beside.more
        rest = await outbox.claim(conn, ALL_SHARDS, 10, outbox.ids_literal([]))
        assert [c.message.id for c in rest.messages] == [m.id for m in first + then]
        assert not rest.more
        await outbox.mark_published(conn, in_flight.ids)
        after = await outbox.claim(conn, ALL_SHARDS, 10)
        assert [c.message.id for c in after.messages] == [m.id for m in then]
        assert await outbox.claim(conn, ALL_SHARDS, 10, after.ids) == outbox.Claim([], False)
    finally:
        await conn.close()


async def test_a_claim_refuses_what_is_not_a_list_of_ids_in_flight(engine: AsyncEngine) -> None:
    """The ids in flight are a value bound as uuid[]: anything else is refused, never run."""
    await enqueue(engine, message("k"))
    conn = await autocommit(engine)
    try:
        for hostile in ["{}') OR true --", "not-a-uuid", "{1,2}"]:
            with pytest.raises(DBAPIError):
                await outbox.claim(conn, ALL_SHARDS, 10, hostile)
        assert len((await outbox.claim(conn, ALL_SHARDS, 10)).messages) == 1
    finally:
        await conn.close()


async def test_pruning_deletes_only_old_published_rows(engine: AsyncEngine) -> None:
    await enqueue(engine, *[message(f"k{i}") for i in range(5)])
    conn = await autocommit(engine)
    try:
        claimed = await outbox.claim_batch(conn, ALL_SHARDS, 3)
        await outbox.mark_published(conn, [c.message.id for c in claimed])
        await conn.execute(
            text(
                "UPDATE outbox SET published_at = published_at - interval '2 hours'"
                " WHERE published_at IS NOT NULL"
            )
        )
        assert await outbox.prune_published(conn, timedelta(hours=3), 100) == 0
        assert await outbox.prune_published(conn, timedelta(hours=1), 2) == 2
        assert await outbox.prune_published(conn, timedelta(hours=1), 2) == 1
        remaining = (
            await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
        ).scalar_one()
        assert remaining == 2
    finally:
        await conn.close()


async def test_inspection_views_answer_in_plain_sql(engine: AsyncEngine) -> None:
    await enqueue(
        engine, message("a", "orders"), message("b", "orders"), message("c", "kafka.orders.created")
    )
    conn = await autocommit(engine)
    try:
        [claimed] = await outbox.claim_batch(conn, ALL_SHARDS, 1)
        await outbox.mark_published(conn, [claimed.message.id])
        backlog = (
            await conn.execute(text("SELECT unpublished, parked, oldest_age FROM outbox_backlog"))
        ).one()
        assert backlog.unpublished == 2 and backlog.parked == 0
        assert backlog.oldest_age > timedelta(0)
        by_topic = dict(
            (
                await conn.execute(text("SELECT topic, unpublished FROM outbox_backlog_by_topic"))
            ).all()
        )
        assert sum(by_topic.values()) == 2
        rate = (
            await conn.execute(text("SELECT published_last_minute FROM outbox_publish_rate"))
        ).scalar_one()
        assert rate == 1
    finally:
        await conn.close()
