"""Publishing with fencing: one Kafka transactional producer per outbox shard lease.

Shard NN is published only through a producer with `transactional.id`
`<prefix>.shard-NN`. A relay opens that producer (`init_transactions`) after it has
taken the shard's lease and before it claims a row of it; Kafka then bumps the id's
producer epoch and aborts whatever the previous owner left open. So a previous owner
that wakes up (after a pause, a freeze, a partition) can publish nothing more for
the shard: its sends and its commit fail as fenced, and its messages already in the
log stay in an aborted transaction, which `read_committed` consumers never see.

Each batch is one transaction per shard it touches, committed before its rows are
marked published. A transaction's commit starts as soon as its messages are produced,
so the relay claims and sends the next batch (of other shards: a producer has one
transaction open at a time) while Kafka commits this one.
Invariant: a message of shard NN is visible to consumers only if it was committed by
the producer of the lease's current epoch, or by an earlier one before the takeover
(then its rows were published before the new owner could claim them, or are
published again: at least once, still in order per key).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from uuid import UUID

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from app.db.locks import OUTBOX_SHARDS
from app.events.message import OutboxMessage
from relay.leases import Change
from relay.publisher import TOPIC_CACHE_SECONDS, Batch, Delivery, Sending, flatten, send

log = logging.getLogger("relay.publisher")

T = TypeVar("T")

# Codes that mean "another producer owns this transactional.id now".
FENCED = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)
# Codes that single out one message as unpublishable, whatever the retries: park it.
POISON = frozenset(
    {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.RECORD_LIST_TOO_LARGE}
)


def transactional_id(prefix: str, shard: int) -> str:
    return f"{prefix}.shard-{shard:02d}"


def transactional_config(base: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """The relay's producer settings, made transactional and bounded.

    A message or transaction that takes three times `timeout` is given up by Kafka too;
    a request (a held connection) is given up after `timeout`, and the connection with it.
    """
    bound = round(timeout * 3 * 1000)
    return {
        **base,
        "message.timeout.ms": bound,
        "transaction.timeout.ms": bound,
        "socket.timeout.ms": round(timeout * 1000),
        "socket.keepalive.enable": True,
    }


class _Fate:
    """A producer's fatal error, as its error callback saw it (no reference to the producer,
    so the callback does not keep its own producer alive)."""

    fatal: KafkaError | None = None


class _ShardProducer:
    def __init__(self, shard: int, epoch: int, producer: Producer, fate: _Fate) -> None:
        self.shard = shard
        self.epoch = epoch
        self.producer = producer
        self.fate = fate
        self.reports: dict[UUID, KafkaError] = {}  # delivery errors of the open transaction

    @property
    def fatal(self) -> KafkaError | None:
        return self.fate.fatal


class TransactionalPublisher:
    transactions_per_shard = True

    def __init__(self, config: dict[str, Any], prefix: str, *, timeout: float) -> None:
        self._config = transactional_config(config, timeout=timeout)
        self._prefix = prefix
        self._timeout = timeout
        self._epochs: dict[int, int] = {}  # shard -> epoch of the lease we hold
        self._producers: dict[int, _ShardProducer] = {}
        self._threads = ThreadPoolExecutor(OUTBOX_SHARDS, thread_name_prefix="relay-txn")
        self._topics: set[str] = set()
        self._topics_checked = 0.0

    async def assign(self, change: Change) -> None:
        for shard in change.lost:
            self._epochs.pop(shard, None)
            self._retire(shard)
        self._epochs.update(change.gained)
        opening = [self._producer_for(shard) for shard in change.gained]
        for outcome in await asyncio.gather(*opening, return_exceptions=True):
            if isinstance(outcome, BaseException):  # opened again at the shard's next batch
                log.warning(
                    "could not open a transactional producer", extra={"error": str(outcome)}
                )

    async def send(self, batch: Batch) -> Sending:
        sending = Sending(flatten(batch))
        missing = await self._missing_topics(sending.messages)
        for shard, messages in batch.items():
            try:
                owner = await self._producer_for(shard)
            except KafkaException as exc:
                sending.expected += len(messages)
                for message in messages:
                    sending.results[message.id] = Delivery(message.id, f"no producer: {exc}")
                continue
            ids = self._begin(owner, messages, missing, sending)
            sending.commits.append(asyncio.ensure_future(self._commit(sending, shard, ids)))
        return sending

    async def wait(self, sending: Sending, should_stop: Callable[[], bool]) -> list[Delivery]:
        await asyncio.gather(*sending.commits)
        return sending.deliveries()

    def close(self, timeout: float) -> None:
        for shard in list(self._producers):
            self._retire(shard, wait=timeout)
        self._threads.shutdown(wait=True)

    def _begin(
        self,
        owner: _ShardProducer,
        batch: Sequence[OutboxMessage],
        missing: set[str],
        sending: Sending,
    ) -> list[UUID]:
        """Open a transaction and produce `batch` into it; return the ids produced."""
        owner.producer.begin_transaction()
        owner.reports = {}
        produced: list[UUID] = []
        stopped_keys: set[str] = set()  # a refused message holds back the rest of its key
        for message in batch:
            if message.key in stopped_keys:
                continue
            sending.expected += 1
            refusal = (
                Delivery(message.id, f"topic {message.topic!r} does not exist", True)
                if message.topic in missing
                else self._produce(owner, message)
            )
            if refusal is None:
                produced.append(message.id)
            else:
                sending.results[message.id] = refusal
                stopped_keys.add(message.key)
        return produced

    async def _commit(self, sending: Sending, shard: int, ids: list[UUID]) -> None:
        owner = self._producers.get(shard)
        if owner is None:  # retired meanwhile: nothing of it will be known
            sending.expected -= len(ids)
            return
        try:
            await self._run(owner.producer.commit_transaction, self._timeout)
        except KafkaException as exc:
            await self._failed(sending, owner, ids, exc.args[0])
            return
        for message_id in ids:
            sending.results[message_id] = Delivery(message_id)

    async def _failed(
        self, sending: Sending, owner: _ShardProducer, ids: list[UUID], error: KafkaError
    ) -> None:
        if error.code() in FENCED or (owner.fatal and owner.fatal.code() in FENCED):
            # Its next owner has opened the shard's producer: we publish nothing more for it.
            sending.fenced.add(owner.shard)
            sending.expected -= len(ids)
            self._epochs.pop(owner.shard, None)
            self._retire(owner.shard)
            return
        try:
            if not error.txn_requires_abort():
                raise KafkaException(error)  # state unknown (e.g. timed out): start afresh
            await self._run(owner.producer.abort_transaction, self._timeout)
        except KafkaException:
            self._retire(owner.shard)  # the next producer's init aborts what is left open
        for message_id in ids:
            report = owner.reports.get(message_id)
            poison = report is not None and report.code() in POISON
            reason = (report or error).str()
            sending.results[message_id] = Delivery(message_id, reason, poison)

    async def _producer_for(self, shard: int) -> _ShardProducer:
        """The shard's producer for the lease we hold, opened (and fencing) if need be."""
        epoch = self._epochs.get(shard)
        current = self._producers.get(shard)
        if current is not None and current.epoch == epoch and current.fatal is None:
            return current
        if current is not None and current.fatal is not None and current.fatal.code() in FENCED:
            # Never open it again ourselves: that would fence the shard's new owner.
            self._epochs.pop(shard, None)
            epoch = None
        self._retire(shard)
        if epoch is None:
            raise KafkaException(KafkaError(KafkaError._STATE, f"shard {shard} is not ours"))
        owner = self._open(shard, epoch)
        started = time.perf_counter()
        try:
            await self._run(owner.producer.init_transactions, self._timeout)
        except KafkaException:
            self._producers.pop(shard, None)
            self._threads.submit(_discard, owner.producer, 0)
            raise
        log.info(
            "transactional producer ready",
            extra={
                "transactional_id": transactional_id(self._prefix, shard),
                "epoch": epoch,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return owner

    def _open(self, shard: int, epoch: int) -> _ShardProducer:
        fate = _Fate()

        def on_error(error: KafkaError) -> None:
            if error.fatal():
                fate.fatal = error
            log.warning(
                "kafka producer error",
                extra={"error": error.str(), "fatal": error.fatal(), "shard": shard},
            )

        producer = Producer(
            {
                **self._config,
                "client.id": f"{self._config.get('client.id', 'orders-relay')}-shard-{shard:02d}",
                "transactional.id": transactional_id(self._prefix, shard),
                "error_cb": on_error,
            }
        )
        owner = self._producers[shard] = _ShardProducer(shard, epoch, producer, fate)
        return owner

    def _retire(self, shard: int, wait: float = 0) -> None:
        owner = self._producers.pop(shard, None)
        if owner is not None:
            # Destroying a producer can block on its threads: never on the event loop.
            done = self._threads.submit(_discard, owner.producer, wait)
            if wait:
                done.result()

    def _produce(self, owner: _ShardProducer, message: OutboxMessage) -> Delivery | None:
        def report(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                owner.reports[message.id] = error

        refused = send(owner.producer, message, report)
        if refused is None:
            return None
        return Delivery(message.id, refused.str(), refused.code() not in FENCED)

    async def _missing_topics(self, messages: Iterable[OutboxMessage]) -> set[str]:
        topics = {message.topic for message in messages}
        stale = time.monotonic() - self._topics_checked > TOPIC_CACHE_SECONDS
        if (topics - self._topics or stale) and self._producers:
            any_producer = next(iter(self._producers.values())).producer
            metadata = await self._run(any_producer.list_topics, None, self._timeout)
            self._topics = set(metadata.topics)
            self._topics_checked = time.monotonic()
        return topics - self._topics if self._topics_checked else set()

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, call, *args)


def _discard(producer: Producer, wait: float) -> None:
    """Drop what is queued (a fenced or stuck producer must send nothing more), or flush."""
    if wait:
        producer.flush(wait)
    producer.purge(in_queue=True, in_flight=True)
    producer.poll(0)
