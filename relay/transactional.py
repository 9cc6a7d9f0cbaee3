"""Publishing with fencing: one Kafka transactional producer per relay, and the last
owner of a shard fenced before the shard is published again.

A relay publishes through one producer whose `transactional.id` is
`<prefix>.relay-<relay id>` (a new id for each relay process). Each batch is one
transaction, whatever shards it holds, committed before its rows are marked published.

A lease that *expired* names the relay it expired on (relay/leases.py). Before
publishing a shard taken that way, the relay opens a producer under that relay's
`transactional.id` once (`init_transactions`): Kafka bumps the id's epoch and aborts
what it left open. So a previous owner that wakes up (after a pause, a freeze, a
partition) can publish nothing more: its sends and its commit fail as fenced, and its
messages already in the log stay in an aborted transaction, which `read_committed`
consumers never see. A lease handed back (a rebalance, a clean stop) is handed back
between batches, with no transaction open: there is nothing to fence.

A fenced relay has lost its one producer, and with it every shard: it opens a new one
only in `assign`, which the relay calls right after renewing its leases, and publishes
only the shards that renewal still gave it. A producer is never opened on the way to a
send: a batch claimed before a takeover could otherwise go out through a producer
opened after the fence.

The next batch is claimed while Kafka commits this one, and begun once that commit is
done (a producer has one transaction open at a time).
Invariant: a message is visible to consumers only if it was committed by a producer
opened after a renewal of its shard's lease and before any takeover of that lease.
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
# Commits, opening and fencing run here, off the event loop: a producer's and one fence
# per previous owner at a takeover (more wait their turn).
THREADS = 4


def transactional_id(prefix: str, relay_id: UUID) -> str:
    return f"{prefix}.relay-{relay_id}"


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


class _Producer:
    def __init__(self, producer: Producer, fate: _Fate) -> None:
        self.producer = producer
        self.fate = fate
        self.reports: dict[UUID, KafkaError] = {}  # delivery errors of the open transaction

    @property
    def fenced(self) -> bool:
        return self.fate.fatal is not None and self.fate.fatal.code() in FENCED


class TransactionalPublisher:
    def __init__(
        self, config: dict[str, Any], prefix: str, relay_id: UUID, *, timeout: float
    ) -> None:
        self._config = transactional_config(config, timeout=timeout)
        self._prefix = prefix
        self._id = relay_id
        self._timeout = timeout
        self._shards: set[int] = set()  # shards we hold, as the last assign said
        self._unfenced: dict[int, UUID] = {}  # shard -> previous owner not fenced yet
        self._owner: _Producer | None = None
        self._committing: asyncio.Future[None] | None = None  # the open transaction's commit
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="relay-txn")
        self._topics: set[str] = set()
        self._topics_checked = 0.0

    @property
    def relay_id(self) -> UUID:
        return self._id

    @property
    def transactional_id(self) -> str:
        return transactional_id(self._prefix, self._id)

    async def assign(self, change: Change) -> None:
        """Called between batches, right after a lease renewal: take the change in, fence
        the previous owners of shards taken after their lease expired, and open our
        producer if we hold shards and have none (a failure is tried again next time)."""
        self._shards.difference_update(change.lost)
        for shard in change.lost:
            self._unfenced.pop(shard, None)
        self._shards.update(change.gained)
        self._unfenced.update(change.previous)
        await self._fence_previous_owners()
        if not self._shards:
            self._retire()
        elif self._owner is None:
            try:
                await self._open()
            except KafkaException as exc:
                log.warning("could not open the transactional producer", extra={"error": str(exc)})

    async def send(self, batch: Batch) -> Sending:
        """Begin one transaction with every message of `batch` it may publish, once the
        last one's commit is done; its commit starts at once (`wait` awaits it)."""
        if self._committing is not None:  # its outcome is the batch's own, read by `wait`
            await asyncio.wait([self._committing])
        owner = self._owner
        if owner is not None and owner.fate.fatal is not None:
            self._lost(owner, fenced=owner.fenced)
            owner = None
        sending = Sending(flatten(batch))
        publishable: list[OutboxMessage] = []
        for shard, messages in batch.items():
            why = self._why_not(shard, owner)
            if why is None:
                publishable.extend(messages)
                continue
            sending.expected += len(messages)
            for message in messages:
                sending.results[message.id] = Delivery(message.id, f"no producer: {why}")
        if owner is None or not publishable:
            return sending
        missing = await self._missing_topics(publishable)
        ids = self._begin(owner, publishable, missing, sending)
        self._committing = asyncio.ensure_future(self._commit(sending, owner, ids))
        sending.commits.append(self._committing)
        return sending

    async def wait(self, sending: Sending, should_stop: Callable[[], bool]) -> list[Delivery]:
        await asyncio.gather(*sending.commits)
        return sending.deliveries()

    def close(self, timeout: float) -> None:
        self._retire(wait=timeout)
        self._threads.shutdown(wait=True)

    def _why_not(self, shard: int, owner: _Producer | None) -> str | None:
        if shard not in self._shards:
            return f"shard {shard} is not ours"
        if shard in self._unfenced:
            return f"shard {shard}'s previous owner is not fenced yet"
        if owner is None:
            return "the producer is not open (it is opened after the next lease renewal)"
        return None

    def _begin(
        self,
        owner: _Producer,
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

    async def _commit(self, sending: Sending, owner: _Producer, ids: list[UUID]) -> None:
        try:
            await self._run(owner.producer.commit_transaction, self._timeout)
        except KafkaException as exc:
            await self._failed(sending, owner, ids, exc.args[0])
            return
        for message_id in ids:
            sending.results[message_id] = Delivery(message_id)

    async def _failed(
        self, sending: Sending, owner: _Producer, ids: list[UUID], error: KafkaError
    ) -> None:
        if error.code() in FENCED or owner.fenced:
            # A relay that took one of our shards fenced our producer: what it held is
            # aborted, and no shard is ours to publish until our leases are renewed.
            sending.fenced.update(self._shards)
            sending.expected -= len(ids)
            self._lost(owner, fenced=True)
            return
        try:
            if not error.txn_requires_abort():
                raise KafkaException(error)  # state unknown (e.g. timed out): start afresh
            await self._run(owner.producer.abort_transaction, self._timeout)
        except KafkaException:
            self._retire()  # our next producer's init aborts what is left open
        for message_id in ids:
            report = owner.reports.get(message_id)
            poison = report is not None and report.code() in POISON
            reason = (report or error).str()
            sending.results[message_id] = Delivery(message_id, reason, poison)

    def _lost(self, owner: _Producer, *, fenced: bool) -> None:
        """Our producer is fenced or broken: drop it, and if fenced forget every shard (the
        next lease renewal says again which are ours)."""
        if fenced:
            log.warning(
                "our transactional producer was fenced", extra={"shards": len(self._shards)}
            )
            self._shards.clear()
            self._unfenced.clear()
        if self._owner is owner:
            self._retire()

    async def _open(self) -> _Producer:
        fate = _Fate()

        def on_error(error: KafkaError) -> None:
            if error.fatal():
                fate.fatal = error
            log.warning(
                "kafka producer error", extra={"error": error.str(), "fatal": error.fatal()}
            )

        started = time.perf_counter()
        owner = _Producer(self._producer(self.transactional_id, on_error), fate)
        try:
            await self._run(owner.producer.init_transactions, self._timeout)
        except KafkaException:
            self._threads.submit(_discard, owner.producer, 0)
            raise
        self._owner = owner
        log.info(
            "transactional producer ready",
            extra={
                "transactional_id": self.transactional_id,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return owner

    async def _fence_previous_owners(self) -> None:
        """Open each previous owner's producer once, which fences it; shards whose previous
        owner could not be fenced stay unpublished (tried again at the next assign)."""
        owners = set(self._unfenced.values())
        outcomes = await asyncio.gather(
            *(self._run(self._fence, owner) for owner in owners), return_exceptions=True
        )
        for owner, outcome in zip(owners, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning(
                    "could not fence a previous owner",
                    extra={"relay_id": str(owner), "error": str(outcome)},
                )
                continue
            for shard in [s for s, previous in self._unfenced.items() if previous == owner]:
                del self._unfenced[shard]

    def _fence(self, previous: UUID) -> None:
        """In a worker thread: bump the previous owner's producer epoch, then let go."""
        fenced = transactional_id(self._prefix, previous)
        started = time.perf_counter()
        producer = self._producer(fenced, None)
        try:
            producer.init_transactions(self._timeout)
        finally:
            _discard(producer, 0)
        log.info(
            "fenced a previous owner",
            extra={"transactional_id": fenced, "seconds": round(time.perf_counter() - started, 3)},
        )

    def _producer(
        self, transactional: str, on_error: Callable[[KafkaError], None] | None
    ) -> Producer:
        config = {**self._config, "transactional.id": transactional}
        if on_error is not None:
            config["error_cb"] = on_error
        return Producer(config)

    def _retire(self, wait: float = 0) -> None:
        owner, self._owner = self._owner, None
        self._committing = None
        if owner is not None:
            # Destroying a producer can block on its threads: never on the event loop.
            done = self._threads.submit(_discard, owner.producer, wait)
            if wait:
                done.result()

    def _produce(self, owner: _Producer, message: OutboxMessage) -> Delivery | None:
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
        if (topics - self._topics or stale) and self._owner is not None:
            metadata = await self._run(self._owner.producer.list_topics, None, self._timeout)
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
