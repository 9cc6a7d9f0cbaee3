"""The relay's outside world: something that publishes messages and reports each delivery.

`KafkaPublisher` is the real one (confluent-kafka, idempotent, acks=all);
`relay.testing.InMemoryPublisher` stands in for it in tests. A publisher knows
messages (`app.events.message.OutboxMessage`), grouped by the outbox shard they go
out under, and nothing of the rows they came from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast
from uuid import UUID

import msgspec
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from opentelemetry.trace import SpanKind

from app import telemetry
from app.events.message import OutboxMessage
from relay.leases import Change

log = logging.getLogger("relay.publisher")

TOPIC_CACHE_SECONDS = 30.0

# What one `send` gets: outbox shard -> its messages, each key's in commit order.
Batch = Mapping[int, Sequence[OutboxMessage]]


class Delivery(msgspec.Struct, frozen=True):
    """What became of one message: delivered (error is None), or why not."""

    id: UUID
    error: str | None = None
    permanent: bool = False  # retrying cannot help: park the row for an operator


class FatalPublishError(Exception):
    """The producer cannot continue (e.g. its idempotence state is broken): restart."""


class Sending(msgspec.Struct):
    """A batch handed to the producer: its fate arrives in `results`, by message id."""

    messages: list[OutboxMessage]
    expected: int = 0  # how many will get a Delivery (refused keys hold back the rest)
    results: dict[UUID, Delivery] = msgspec.field(default_factory=dict)
    # Shards we may no longer publish: another relay took one and fenced our producer.
    fenced: set[int] = msgspec.field(default_factory=set)
    # The transaction's commit, started by `send`; `wait` awaits it.
    commits: list[asyncio.Future[None]] = msgspec.field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.results) >= self.expected

    def deliveries(self) -> list[Delivery]:
        return [self.results[m.id] for m in self.messages if m.id in self.results]


class Publisher(Protocol):
    async def send(self, batch: Batch) -> Sending:
        """Start publishing, each key in order; return at once, before Kafka acknowledges."""
        ...

    async def wait(self, sending: Sending, should_stop: Callable[[], bool]) -> list[Delivery]:
        """A Delivery for each message whose fate is known once Kafka has answered.

        Messages still in flight when `should_stop()` turns true are left out:
        their rows stay unpublished and go out again later.
        """
        ...

    async def assign(self, change: Change) -> None:
        """Shards gained (with their lease's epoch and, if it had expired, its previous
        owner) and lost; called between batches only, right after a lease renewal."""
        ...

    def close(self, timeout: float) -> None: ...


def producer_config(client: Mapping[str, str], client_id: str) -> dict[str, Any]:
    """`client`: brokers and security, from `app.config.kafka_client_config`."""
    return {
        **client,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        # Never give up on a message: a timed-out message could let a later one
        # of the same key overtake it. The relay waits, and can be stopped.
        "message.timeout.ms": 0,
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "partitioner": "murmur2_random",  # the Java client's: same key, same partition
        "log_level": 3,
    }


class KafkaPublisher:
    def __init__(self, config: dict[str, Any], *, wait_step: float = 0.1) -> None:
        self._fatal: KafkaError | None = None
        self._producer = Producer({**config, "error_cb": self._on_error})
        self._wait_step = wait_step
        self._topics: set[str] = set()
        self._topics_checked = 0.0

    async def send(self, batch: Batch) -> Sending:
        messages = flatten(batch)  # one producer for every shard
        sending = Sending(messages)
        missing = {
            topic for topic in {m.topic for m in messages} if not await self._topic_exists(topic)
        }
        stopped_keys: set[str] = set()  # a refused message holds back the rest of its key
        for message in messages:
            if message.key in stopped_keys:
                continue
            sending.expected += 1
            if message.topic in missing:
                error = f"topic {message.topic!r} does not exist"
                sending.results[message.id] = Delivery(message.id, error, True)
            else:
                self._produce(message, sending.results)
            if message.id in sending.results and sending.results[message.id].error:
                stopped_keys.add(message.key)
        return sending

    async def wait(self, sending: Sending, should_stop: Callable[[], bool]) -> list[Delivery]:
        while not sending.done:
            # poll() returns as soon as delivery reports were served, or after wait_step.
            await asyncio.to_thread(self._producer.poll, self._wait_step)
            if self._fatal is not None:
                raise FatalPublishError(self._fatal.str())
            if should_stop() and not sending.done:
                self._producer.purge(in_queue=True, in_flight=False)
                break
        return sending.deliveries()

    async def assign(self, change: Change) -> None:
        return None  # one producer for every shard: nothing to fence with (RELAY_FENCING=false)

    def close(self, timeout: float) -> None:
        self._producer.flush(timeout)

    def _produce(self, message: OutboxMessage, results: dict[UUID, Delivery]) -> None:
        def report(error: KafkaError | None, _: Message) -> None:
            if error is None:
                results[message.id] = Delivery(message.id)
            elif error.code() != KafkaError._PURGE_QUEUE:
                results[message.id] = Delivery(message.id, error.str(), not error.retriable())

        refused = send(self._producer, message, report)
        if refused is not None:  # rejected before sending, e.g. too large
            results[message.id] = Delivery(message.id, str(refused), True)

    async def _topic_exists(self, topic: str) -> bool:
        stale = time.monotonic() - self._topics_checked > TOPIC_CACHE_SECONDS
        if topic not in self._topics or stale:
            metadata = await asyncio.to_thread(self._producer.list_topics, None, 10)
            self._topics = set(metadata.topics)
            self._topics_checked = time.monotonic()
        return topic in self._topics

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
        log.warning("kafka producer error", extra={"error": error.str(), "fatal": error.fatal()})


def send(
    producer: Producer,
    message: OutboxMessage,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> KafkaError | None:
    """Queue one message on `producer`, waiting for room when its local queue is full;
    the error when the client refuses it before sending (too large, fenced)."""
    headers = cast(  # the client's stub is invariant; str values are what it takes
        "dict[str, str | bytes | None]",
        _traced(message) if telemetry.tracing_enabled() else message.headers,
    )
    while True:
        try:
            producer.produce(
                message.topic,
                message.payload,
                message.key.encode(),
                headers=headers,
                on_delivery=on_delivery,
            )
            return None
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            return error


def _traced(message: OutboxMessage) -> dict[str, str]:
    """With tracing on, the publish is a span in the request's trace, and the consumer
    continues from it; off, the stored context travels as it is."""
    with telemetry.span(
        f"publish {message.topic}",
        parent=message.headers,
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": message.topic},
    ):
        traceparent, tracestate = telemetry.current_traceparent()
    headers = dict(message.headers)
    if traceparent:
        headers["traceparent"] = traceparent
    if tracestate:
        headers["tracestate"] = tracestate
    return headers


def flatten(batch: Batch) -> list[OutboxMessage]:
    """The batch's messages, shard after shard (each key stays in its shard, in order)."""
    return [message for messages in batch.values() for message in messages]
