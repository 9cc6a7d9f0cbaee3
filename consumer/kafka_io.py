"""The consumer's outside world: records in (with offsets we store ourselves) and
dead letters out. The real implementations use confluent-kafka; the in-memory ones
in consumer/testing.py stand in for them in tests."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from app.events.codec import rfc3339
from consumer import metrics

log = logging.getLogger("consumer.kafka")

DLQ_HEADER_PREFIX = "dlq_"
# A letter Kafka refuses for its size goes again without the value and without any
# original header longer than this; the original stays readable at its offset.
SLIM_HEADER_BYTES = 1024
_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
LAG_EVERY = 5.0
BATCH_LINGER = 0.005  # seconds
# A request unanswered this long is given up and its connection closed, so a half-open
# connection (fetches, the group coordinator) is replaced by a new one in seconds rather
# than librdkafka's default 60 s; fetches wait at most 0.5 s at the broker, so far below it.
REQUEST_TIMEOUT_MS = 10_000


class Record(msgspec.Struct, frozen=True):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class EventSource(Protocol):
    async def poll(self, max_records: int, timeout: float) -> list[Record]: ...

    def done(self, record: Record) -> None:
        """The record's effects are committed: its offset may be committed too."""
        ...

    def close(self) -> None: ...


class DeadLetters(Protocol):
    async def send(self, record: Record, reason: str, error: BaseException | None) -> None:
        """Put `record` on the DLQ and return once Kafka has it (raise if it could not)."""
        ...

    def close(self) -> None: ...


def _client_id(role: str) -> str:
    return f"orders-{role}-{socket.gethostname()}-{os.getpid()}"


class KafkaEventSource:
    def __init__(
        self,
        client: Mapping[str, str],
        group_id: str,
        topics: Sequence[str],
        *,
        session_timeout_ms: int,
    ) -> None:
        self._consumer = Consumer(
            {
                **client,  # brokers and security (app.config.kafka_client_config)
                "group.id": group_id,
                "client.id": _client_id("consumer"),
                # Offsets are stored by us, only after the database commit; the
                # client commits what is stored, every second and on close.
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 1000,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                # Only what the relays committed: a fenced relay's aborted sends stay unseen.
                "isolation.level": "read_committed",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(100, session_timeout_ms // 10),
                "socket.timeout.ms": REQUEST_TIMEOUT_MS,
                "log_level": 3,
            }
        )
        self._next_lag_report = 0.0
        self._consumer.subscribe(
            list(topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    async def poll(self, max_records: int, timeout: float) -> list[Record]:
        messages = await asyncio.to_thread(self._take, max_records, timeout)
        if time.monotonic() >= self._next_lag_report:
            self._report_lag()
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("kafka consumer error", extra={"error": error.str()})
                continue
            records.append(_record(message))
        return records

    def _take(self, max_records: int, timeout: float) -> list[Message]:
        """Wait for one message at most `timeout`, then for more only a moment (BATCH_LINGER):
        a lone event is not held back for a batch to fill, and a burst is one transaction."""
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        if max_records == 1:
            return [first]
        return [first, *self._consumer.consume(max_records - 1, BATCH_LINGER)]

    def _report_lag(self) -> None:
        """Per assigned partition: its end (as of the last fetch) minus our position."""
        self._next_lag_report = time.monotonic() + LAG_EVERY
        assigned = self._consumer.assignment()
        for position in self._consumer.position(assigned) if assigned else []:
            _, end = self._consumer.get_watermark_offsets(position, cached=True)
            if position.offset >= 0 and end >= 0:
                metrics.LAG.labels(position.topic, str(position.partition)).set(
                    end - position.offset
                )

    def done(self, record: Record) -> None:
        try:
            self._consumer.store_offsets(
                offsets=[TopicPartition(record.topic, record.partition, record.offset + 1)]
            )
        except KafkaException as exc:  # the partition was taken from us meanwhile
            log.info("offset not stored", extra={"error": str(exc), "partition": record.partition})

    def close(self) -> None:
        self._consumer.close()  # commits the stored offsets, leaves the group

    def _on_assign(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": _describe(partitions)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Everything polled so far is processed (the loop finishes a batch before
        # polling again), so what is stored is exactly what is done: commit it.
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("commit on revoke failed", extra={"error": str(exc)})
        log.info("partitions revoked", extra={"partitions": _describe(partitions)})

    def _on_lost(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("partitions lost", extra={"partitions": _describe(partitions)})


def _describe(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{p.topic}[{p.partition}]" for p in partitions)


def _record(message: Message) -> Record:
    return Record(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        headers=header_pairs(message),
    )


def header_pairs(message: Message) -> list[tuple[str, bytes]]:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [
        (name, value.encode() if isinstance(value, str) else value or b"") for name, value in pairs
    ]


def dead_letter_headers(
    record: Record,
    reason: str,
    error: BaseException | None,
    group_id: str,
    *,
    omitted: str | None = None,
) -> list[tuple[str, str | bytes | None]]:
    """The original headers plus why and where from: enough to understand and replay."""
    extra = {
        "dlq_reason": reason,
        "dlq_exception": "".join(traceback.format_exception_only(error)).strip() if error else "",
        "dlq_original_topic": record.topic,
        "dlq_original_partition": str(record.partition),
        "dlq_original_offset": str(record.offset),
        "dlq_consumer_group": group_id,
        "dlq_failed_at": rfc3339(datetime.now(UTC)),
        **({"dlq_omitted": omitted} if omitted else {}),
    }
    kept: list[tuple[str, str | bytes | None]] = [
        (name, value) for name, value in record.headers if not name.startswith(DLQ_HEADER_PREFIX)
    ]
    return kept + [(name, value[:4000]) for name, value in extra.items()]


def slimmed(record: Record) -> tuple[Record, str]:
    """The record without its value and long headers, and a note saying what was left out."""
    kept = [(n, v) for n, v in record.headers if len(n) + len(v) <= SLIM_HEADER_BYTES]
    note = (
        f"value ({len(record.value or b'')} bytes) and {len(record.headers) - len(kept)} "
        f"header(s) over {SLIM_HEADER_BYTES} bytes: too large for the DLQ; "
        "read the original at its topic, partition and offset"
    )
    return msgspec.structs.replace(record, value=None, headers=kept), note


def where(record: Record) -> dict[str, object]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


class KafkaDeadLetters:
    def __init__(self, client: Mapping[str, str], topic: str, group_id: str) -> None:
        self._topic = topic
        self._group_id = group_id
        self._producer = Producer(
            {
                **client,  # brokers and security (app.config.kafka_client_config)
                "client.id": _client_id("dlq"),
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": 30_000,
                "log_level": 3,
            }
        )

    async def send(self, record: Record, reason: str, error: BaseException | None) -> None:
        """A letter too large for the DLQ (a value or header near the topic's limit) is
        sent slimmed rather than retried forever: the same size would always be refused."""
        headers = dead_letter_headers(record, reason, error, self._group_id)
        try:
            await self._produce(record.key, record.value, headers)
        except KafkaException as exc:
            if exc.args[0].code() not in _TOO_LARGE:
                raise
            slim, note = slimmed(record)
            log.warning("dead letter too large; sending it without its value", extra=where(record))
            headers = dead_letter_headers(slim, reason, error, self._group_id, omitted=note)
            await self._produce(record.key, None, headers)

    async def _produce(
        self, key: bytes | None, value: bytes | None, headers: list[tuple[str, str | bytes | None]]
    ) -> None:
        outcome: list[KafkaError | None] = []
        self._producer.produce(
            self._topic, value, key, headers=headers, on_delivery=lambda e, _: outcome.append(e)
        )
        while not outcome:
            await asyncio.to_thread(self._producer.flush, 1.0)
        if outcome[0] is not None:
            raise KafkaException(outcome[0])

    def close(self) -> None:
        self._producer.flush(10)
