"""Fencing against real Kafka: a relay that lost a shard publishes nothing more for it.

Two `TransactionalPublisher`s stand for two relays and one shard changes hands
between them, as the leases would hand it over (after an expiry, naming the relay
it expired on). What a consumer reading `read_committed` sees (kcat, an independent
client) is the only judge.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from app.events.message import OutboxMessage
from relay.leases import Change
from relay.publisher import Delivery, producer_config
from relay.transactional import THREADS, TransactionalPublisher
from tests.support import kcat
from tests.support.pipeline import Topics
from tests.support.servers import KafkaServer

pytestmark = pytest.mark.anyio
SHARD = 7


def message(topic: str, n: int, key: str = "customer-1") -> OutboxMessage:
    return OutboxMessage(
        uuid.uuid4(), topic, key, "order.created", f"order-{n}", f'{{"n": {n}}}'.encode(),
        {"ce_id": f"e{n}"},
    )  # fmt: skip


def of_shard(*messages: OutboxMessage, shard: int = SHARD) -> dict[int, list[OutboxMessage]]:
    """A batch as the relay hands it over: every message of one shard."""
    return {shard: list(messages)}


def taken_from(zombie: TransactionalPublisher, *, epoch: int = 2) -> Change:
    """The change of the relay that took SHARD after the zombie's lease on it expired."""
    return Change({SHARD: epoch}, frozenset(), {SHARD: zombie.relay_id})


@pytest.fixture
def prefix() -> str:
    return f"orders-relay-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def relays(kafka: KafkaServer, prefix: str) -> AsyncIterator[list[TransactionalPublisher]]:
    made: list[TransactionalPublisher] = []

    def make() -> TransactionalPublisher:
        config: dict[str, Any] = producer_config(kafka.client_config(), "fencing-test")
        made.append(TransactionalPublisher(config, prefix, uuid.uuid4(), timeout=5))
        return made[-1]

    make(), make()
    yield made
    for publisher in made:
        publisher.close(5)


def committed(kafka: KafkaServer, topic: str) -> list[str]:
    return [record.headers["ce_id"] for record in kcat.read_all(kafka.client_config(), topic)]


def every_record(kafka: KafkaServer, topic: str, partitions: int) -> int:
    """Records in the log whatever their transaction's fate (read_uncommitted)."""
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"raw-{uuid.uuid4().hex[:6]}",
            "isolation.level": "read_uncommitted",
            "enable.auto.commit": False,
        }
    )
    try:
        total = 0
        for partition in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            total += high - low
        return total
    finally:
        consumer.close()


async def test_a_zombie_is_fenced_with_its_sends_in_the_log_and_in_its_queue(
    relays: list[TransactionalPublisher], kafka: KafkaServer, topics: Topics
) -> None:
    zombie, heir = relays
    first, second, third = (message(topics.orders, n) for n in (1, 2, 3))
    await zombie.assign(Change({SHARD: 1}, frozenset()))
    await zombie._missing_topics([first])  # topics known: the send needs no worker thread
    # It freezes between producing and committing: its worker threads, which run the
    # commit that `send` starts, are all held.
    frozen = threading.Event()
    held = [zombie._threads.submit(frozen.wait, 30) for _ in range(THREADS)]
    in_log = await zombie.send(of_shard(first, second))
    assert zombie._owner is not None
    zombie._owner.producer.flush(5)  # its sends reached the log; not committed

    # It freezes; its lease expires and the heir takes it (epoch 2), naming the zombie:
    # opening a producer under the zombie's id fences it and aborts its open transaction.
    started = time.perf_counter()
    await heir.assign(taken_from(zombie))
    takeover = time.perf_counter() - started
    deliveries = await heir.wait(await heir.send(of_shard(first, second, third)), lambda: False)
    assert deliveries == [Delivery(m.id) for m in (first, second, third)]

    # The zombie wakes: its commit is refused, and it learns its shards are gone.
    frozen.set()
    assert all(thread.result(10) for thread in held)
    assert await zombie.wait(in_log, lambda: False) == []
    assert in_log.fenced == {SHARD}
    # It still tries (say it had claimed before freezing): nothing goes out.
    late = await zombie.send(of_shard(message(topics.orders, 4)))
    assert [d.error for d in await zombie.wait(late, lambda: False)] == [
        f"no producer: shard {SHARD} is not ours"
    ]

    assert committed(kafka, topics.orders) == ["e1", "e2", "e3"]
    assert every_record(kafka, topics.orders, 6) > 3  # the zombie's aborted sends are there
    assert takeover < 5.0
    print(f"\ntakeover (init_transactions of {zombie.transactional_id}): {takeover:.3f}s")


async def test_a_zombie_that_never_hears_of_the_takeover_still_sends_nothing(
    relays: list[TransactionalPublisher], kafka: KafkaServer, topics: Topics
) -> None:
    """Its queue fills after the fence: the broker refuses the old producer epoch."""
    zombie, heir = relays
    await zombie.assign(Change({SHARD: 1}, frozenset()))
    await heir.assign(taken_from(zombie))
    queued = await zombie.send(of_shard(*(message(topics.orders, n, key="k") for n in (1, 2))))
    assert await zombie.wait(queued, lambda: False) == []
    assert queued.fenced == {SHARD}
    sent = await heir.send(of_shard(message(topics.orders, 3, key="k")))
    assert await heir.wait(sent, lambda: False) == [Delivery(sent.messages[0].id)]
    assert committed(kafka, topics.orders) == ["e3"]


async def test_a_fenced_relay_publishes_its_other_shards_again_after_its_next_renewal(
    relays: list[TransactionalPublisher], kafka: KafkaServer, topics: Topics
) -> None:
    """Fencing takes the zombie's one producer, so every shard stops until the renewal
    says which are still its own; then only those go out, through a new producer."""
    zombie, heir = relays
    other = SHARD + 1
    await zombie.assign(Change({SHARD: 1, other: 1}, frozenset()))
    await heir.assign(taken_from(zombie))
    stopped = await zombie.send(of_shard(message(topics.orders, 1, key="k2"), shard=other))
    assert await zombie.wait(stopped, lambda: False) == []
    assert stopped.fenced == {SHARD, other}
    # The renewal gives back the lease it still holds (ShardLeases reports it as gained).
    await zombie.assign(Change({other: 1}, frozenset()))
    again = await zombie.send(
        {other: [message(topics.orders, 2, key="k2")], SHARD: [message(topics.orders, 3)]}
    )
    deliveries = await zombie.wait(again, lambda: False)
    assert [d.error for d in deliveries] == [None, f"no producer: shard {SHARD} is not ours"]
    assert committed(kafka, topics.orders) == ["e2"]


async def test_a_shard_handed_over_cleanly_keeps_per_key_order(
    relays: list[TransactionalPublisher], kafka: KafkaServer, topics: Topics
) -> None:
    first, second = relays
    await first.assign(Change({SHARD: 1}, frozenset()))
    batch = [message(topics.orders, n) for n in range(1, 6)]
    assert len(await first.wait(await first.send(of_shard(*batch[:3])), lambda: False)) == 3
    await first.assign(Change({}, frozenset({SHARD})))  # released between batches
    await second.assign(Change({SHARD: 2}, frozenset()))  # free when taken: no one to fence
    assert len(await second.wait(await second.send(of_shard(*batch[3:])), lambda: False)) == 2
    assert committed(kafka, topics.orders) == ["e1", "e2", "e3", "e4", "e5"]
    # The first relay was not fenced: given a shard again, it publishes at once.
    await first.assign(Change({SHARD + 1: 1}, frozenset()))
    sent = await first.send(of_shard(message(topics.orders, 6, key="k6"), shard=SHARD + 1))
    assert await first.wait(sent, lambda: False) == [Delivery(sent.messages[0].id)]


async def test_an_unknown_topic_is_parked_not_sent(
    relays: list[TransactionalPublisher], topics: Topics
) -> None:
    """Hostile input: a row naming a topic that does not exist."""
    publisher = relays[0]
    await publisher.assign(Change({SHARD: 1}, frozenset()))
    stray = message(f"no-such-topic-{uuid.uuid4().hex[:6]}", 1)
    follower = message(stray.topic, 2)
    bystander = message(topics.orders, 3, key="other")
    deliveries = await publisher.wait(
        await publisher.send(of_shard(stray, follower, bystander)), lambda: False
    )
    assert [(d.id, d.permanent) for d in deliveries] == [(stray.id, True), (bystander.id, False)]
    assert deliveries[1].error is None
    await asyncio.sleep(0)


async def test_a_message_the_broker_refuses_as_too_large_is_parked_not_retried(
    relays: list[TransactionalPublisher], kafka: KafkaServer
) -> None:
    """Hostile input: a message larger than its topic takes, which the client lets through
    and the broker refuses. Its delivery report names it, so it is permanent — parked, not
    retried — and its transaction is aborted, nothing of it seen."""
    topic = f"small-{uuid.uuid4().hex[:6]}"
    small = NewTopic(topic, num_partitions=1, config={"max.message.bytes": "1024"})
    admin = AdminClient(kafka.client_config())  # held: its futures die with it
    admin.create_topics([small])[topic].result(10)
    publisher = relays[0]
    await publisher.assign(Change({SHARD: 1}, frozenset()))
    big = OutboxMessage(
        uuid.uuid4(), topic, "customer-1", "order.created", "order-1",
        b'"' + b"x" * 4000 + b'"', {"ce_id": "big"},
    )  # fmt: skip
    [refused] = await publisher.wait(await publisher.send(of_shard(big)), lambda: False)
    assert (refused.id, refused.permanent) == (big.id, True)
    assert "too large" in (refused.error or "").lower()
    # The abort leaves the producer to bump its epoch, and the next transaction may fail
    # for it (librdkafka purges its message): the relay retries it, as here.
    after = message(topic, 2)
    for _ in range(3):
        sending = await publisher.send(of_shard(after))
        [delivered] = await publisher.wait(sending, lambda: False)
        if delivered.error is None:
            break
        assert not delivered.permanent, delivered
    assert delivered == Delivery(after.id)
    assert committed(kafka, topic) == ["e2"]
