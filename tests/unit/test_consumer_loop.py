"""The consumer loop: every record ends applied, ignored or dead-lettered, then marked done.

The handler is a scripted fake (duck-typed `plan` / `apply_all`); Kafka is the in-memory
source and dead-letter queue. Backoff is made instant so retries cost nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import cast
from uuid import UUID

import anyio
import msgspec
import pytest

from app.domain.errors import FieldError, InvalidInput, Refused, Unavailable
from app.domain.status import Status
from app.events.cloudevents import IncomingEvent, PoisonMessage
from consumer import loop as consumer_loop
from consumer.handler import Applied, Decision, EventHandler, Ignored, Outcome, Transition, Work
from consumer.kafka_io import Record
from consumer.loop import ConsumerLoop
from consumer.testing import InMemoryDeadLetters, InMemorySource

pytestmark = pytest.mark.anyio

ORDER_ID = UUID("5f0c8a8e-7a43-4f8e-9d0e-0d6a3b9e2c11")
RUN_LIMIT = 5.0  # seconds; a run that takes longer is stuck, not slow


@pytest.fixture(autouse=True)
def instant_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_loop, "BACKOFF_BASE", 0)
    monkeypatch.setattr(consumer_loop, "BACKOFF_MAX", 0)


def shipped(offset: int) -> Record:
    """A warehouse's `order.shipped`, binary mode, at `offset` of orders[0]."""
    headers = {
        "ce_specversion": "1.0",
        "ce_id": f"evt-{offset}",
        "ce_source": "/warehouse",
        "ce_type": "order.shipped",
        "ce_subject": str(ORDER_ID),
    }
    return Record(
        topic="orders",
        partition=0,
        offset=offset,
        key=b"customer",
        value=None,
        headers=[(name, value.encode()) for name, value in headers.items()],
    )


def poison(offset: int) -> Record:
    return Record("orders", 0, offset, None, b"not a cloudevent", [])


class FakeHandler:
    """Plans every event as 'ship the order' (or ignores it); `apply` follows a script.

    `failures[n]` is raised by the n-th call of apply_all (None: succeed); after the
    script runs out, every call succeeds. `on_apply` runs first on each call.
    """

    def __init__(
        self,
        failures: Sequence[BaseException | None] = (),
        *,
        ignore: bool = False,
        on_apply: Callable[[int], None] | None = None,
    ) -> None:
        self._failures = list(failures)
        self._ignore = ignore
        self._on_apply = on_apply
        self.calls = 0
        self.applied: list[str] = []

    def plan(self, event: IncomingEvent, *, topic: str, key: bytes | None) -> Decision:
        if self._ignore:
            return Ignored("not for us")
        return Transition(order_id=UUID(event.subject or ""), target=Status.SHIPPED, key="customer")

    async def apply_all(self, batch: Sequence[Work]) -> list[Outcome]:
        """One call is one transaction: a scripted failure fails the whole batch."""
        self.calls += 1
        if self._on_apply is not None:
            self._on_apply(self.calls)
        failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            raise failure
        self.applied.extend(work.event.id for work in batch)
        return [Applied() for _ in batch]


class DrainingSource(InMemorySource):
    """Asks the loop to stop once every record has been handed out, so run() returns."""

    def __init__(self, records: Sequence[Record], stop: asyncio.Event) -> None:
        super().__init__(records)
        self._stop = stop

    async def poll(self, max_records: int, timeout: float) -> list[Record]:
        batch = await super().poll(max_records, timeout)
        if not batch:
            self._stop.set()
        return batch


class FlakyDeadLetters(InMemoryDeadLetters):
    """A DLQ whose first `outages` sends fail, as when Kafka is briefly away."""

    def __init__(self, outages: int, source: InMemorySource) -> None:
        super().__init__()
        self._outages = outages
        self._source = source
        self.committed_when_sent: list[int] = []

    async def send(self, record: Record, reason: str, error: BaseException | None) -> None:
        self.committed_when_sent.append(len(self._source.committed))
        if self._outages:
            self._outages -= 1
            raise ConnectionError("kafka is away")
        await super().send(record, reason, error)


def make_loop(
    source: InMemorySource,
    letters: InMemoryDeadLetters,
    handler: FakeHandler,
    stop: asyncio.Event,
    *,
    max_attempts: int = 3,
    batch_size: int = 10,
) -> ConsumerLoop:
    return ConsumerLoop(
        source,
        letters,
        cast(EventHandler, handler),
        batch_size=batch_size,
        max_attempts=max_attempts,
        stop=stop,
    )


async def run(loop: ConsumerLoop) -> None:
    with anyio.fail_after(RUN_LIMIT):
        await loop.run()


async def test_every_applied_record_is_marked_done_in_order() -> None:
    stop = asyncio.Event()
    records = [shipped(0), shipped(1), shipped(2)]
    source, handler = DrainingSource(records, stop), FakeHandler()
    await run(make_loop(source, InMemoryDeadLetters(), handler, stop))
    assert handler.applied == ["evt-0", "evt-1", "evt-2"]
    assert source.committed == records
    assert source.closed


async def test_poison_record_is_dead_lettered_then_marked_done() -> None:
    stop = asyncio.Event()
    record = poison(0)
    source, handler = DrainingSource([record], stop), FakeHandler()
    letters = FlakyDeadLetters(0, source)
    await run(make_loop(source, letters, handler, stop))
    assert [(sent, reason) for sent, reason, _ in letters.letters] == [
        (record, "not a CloudEvent: no ce_specversion header and no structured envelope")
    ]
    assert isinstance(letters.letters[0][2], PoisonMessage)
    assert letters.committed_when_sent == [0]  # on the DLQ before it was marked done
    assert source.committed == [record]
    assert handler.calls == 0


async def test_poison_record_does_not_block_the_records_behind_it() -> None:
    stop = asyncio.Event()
    records = [shipped(0), poison(1), shipped(2)]
    source, handler, letters = DrainingSource(records, stop), FakeHandler(), InMemoryDeadLetters()
    await run(make_loop(source, letters, handler, stop))
    assert handler.applied == ["evt-0", "evt-2"]
    assert source.committed == records


async def test_ignored_event_is_marked_done_without_being_applied() -> None:
    stop = asyncio.Event()
    record = shipped(0)
    source, letters = DrainingSource([record], stop), InMemoryDeadLetters()
    handler = FakeHandler(ignore=True)
    await run(make_loop(source, letters, handler, stop))
    assert handler.calls == 0
    assert letters.letters == []
    assert source.committed == [record]


async def test_failing_record_is_tried_max_attempts_times_then_dead_lettered() -> None:
    stop = asyncio.Event()
    record = shipped(0)
    boom = RuntimeError("boom")
    source, handler = DrainingSource([record], stop), FakeHandler([boom] * 10)
    letters = InMemoryDeadLetters()
    await run(make_loop(source, letters, handler, stop, max_attempts=4))
    assert handler.calls == 4
    assert letters.letters == [(record, "failed 4 times: RuntimeError: boom", boom)]
    assert source.committed == [record]


async def test_record_that_succeeds_on_a_later_attempt_is_applied_not_dead_lettered() -> None:
    stop = asyncio.Event()
    source = DrainingSource([shipped(0)], stop)
    handler, letters = FakeHandler([RuntimeError("once"), None]), InMemoryDeadLetters()
    await run(make_loop(source, letters, handler, stop, max_attempts=3))
    assert (handler.calls, handler.applied, letters.letters) == (2, ["evt-0"], [])


async def test_database_outage_is_waited_out_beyond_max_attempts() -> None:
    stop = asyncio.Event()
    record = shipped(0)
    outage = [Unavailable("the database is unavailable") for _ in range(5)]
    source, letters = DrainingSource([record], stop), InMemoryDeadLetters()
    handler = FakeHandler(outage)
    await run(make_loop(source, letters, handler, stop, max_attempts=3))
    assert handler.calls == 6
    assert handler.applied == ["evt-0"]
    assert letters.letters == []
    assert source.committed == [record]


async def test_dead_letter_queue_outage_is_waited_out_and_the_record_kept() -> None:
    stop = asyncio.Event()
    record = poison(0)
    source = DrainingSource([record], stop)
    letters = FlakyDeadLetters(3, source)
    await run(make_loop(source, letters, FakeHandler(), stop))
    assert len(letters.committed_when_sent) == 4
    assert [sent for sent, _, _ in letters.letters] == [record]
    assert source.committed == [record]


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("boom"), Unavailable("the database is unavailable")],
    ids=["failing", "outage"],
)
async def test_stop_while_retrying_ends_run_without_marking_the_record_done(
    failure: BaseException,
) -> None:
    stop = asyncio.Event()
    records = [shipped(0), shipped(1)]
    source = DrainingSource(records, stop)
    handler = FakeHandler([failure] * 10, on_apply=lambda _: stop.set())
    letters = InMemoryDeadLetters()
    await run(make_loop(source, letters, handler, stop, max_attempts=5))
    assert handler.calls == 1
    assert source.committed == []
    assert letters.letters == []
    assert source.closed


async def test_stop_interrupts_a_long_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_loop, "BACKOFF_BASE", 1000)
    monkeypatch.setattr(consumer_loop, "BACKOFF_MAX", 1000)
    stop, tried = asyncio.Event(), asyncio.Event()
    source = InMemorySource([shipped(0)])
    handler = FakeHandler([Unavailable("down")] * 100, on_apply=lambda _: tried.set())
    loop = make_loop(source, InMemoryDeadLetters(), handler, stop)
    with anyio.fail_after(RUN_LIMIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(loop.run)
            await tried.wait()
            stop.set()
    assert source.committed == []
    assert source.closed


async def test_stop_during_a_batch_finishes_it_and_leaves_the_rest_for_the_next_run() -> None:
    stop = asyncio.Event()
    records = [shipped(0), shipped(1), shipped(2)]
    source = DrainingSource(records, stop)
    handler = FakeHandler(on_apply=lambda _: stop.set())
    await run(make_loop(source, InMemoryDeadLetters(), handler, stop, batch_size=2))
    assert handler.applied == ["evt-0", "evt-1"]  # the batch in hand is finished, together
    assert handler.calls == 1
    assert source.committed == records[:2]


async def test_a_failing_batch_is_retried_one_event_at_a_time() -> None:
    stop = asyncio.Event()
    records = [shipped(0), shipped(1), shipped(2)]
    source, letters = DrainingSource(records, stop), InMemoryDeadLetters()
    boom = RuntimeError("one bad event")
    # The batch fails; alone, the first event succeeds, the second fails every time.
    handler = FakeHandler([boom, None, boom, boom, boom])
    await run(make_loop(source, letters, handler, stop, max_attempts=3))
    assert handler.applied == ["evt-0", "evt-2"]
    assert letters.letters == [(records[1], "failed 3 times: RuntimeError: one bad event", boom)]
    assert source.committed == records


class ExplodingPlanner(FakeHandler):
    """Planning the event with id `bad` raises `error`, as a hostile record might make it."""

    def __init__(self, bad: str, error: BaseException) -> None:
        super().__init__()
        self._bad, self._error = bad, error

    def plan(self, event: IncomingEvent, *, topic: str, key: bytes | None) -> Decision:
        if event.id == self._bad:
            raise self._error
        return super().plan(event, topic=topic, key=key)


@pytest.mark.parametrize(
    "error",
    [
        RecursionError("maximum recursion depth exceeded"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        MemoryError(),
        KeyError("anything"),
    ],
    ids=["recursion", "unicode", "memory", "key"],
)
async def test_whatever_reading_a_record_raises_makes_it_poison_and_the_partition_flows(
    error: BaseException,
) -> None:
    stop = asyncio.Event()
    records = [shipped(0), shipped(1), shipped(2)]
    source, letters = DrainingSource(records, stop), InMemoryDeadLetters()
    handler = ExplodingPlanner("evt-1", error)
    await run(make_loop(source, letters, handler, stop))
    assert handler.applied == ["evt-0", "evt-2"]
    assert [(record, raised) for record, _, raised in letters.letters] == [(records[1], error)]
    assert type(error).__name__ in letters.letters[0][1]
    assert source.committed == records


async def test_a_value_nested_100000_deep_goes_to_the_dlq() -> None:
    stop = asyncio.Event()
    deep = msgspec.structs.replace(shipped(0), value=b"[" * 100_000 + b"]" * 100_000)
    records = [deep, shipped(1)]
    source, letters = DrainingSource(records, stop), InMemoryDeadLetters()
    handler = FakeHandler()
    await run(make_loop(source, letters, handler, stop))
    assert [(record, why) for record, why, _ in letters.letters] == [
        (deep, "value nested 100000 levels deep exceeds 32")
    ]
    assert handler.applied == ["evt-1"]


@pytest.mark.parametrize(
    "refusal",
    [
        Refused("54000", "index row requires 8216 bytes, maximum size is 8191"),
        Refused("22001", "value too long for type character varying(10)"),
        Refused("23514", 'new row violates check constraint "x"'),
        InvalidInput([FieldError("body", "text must not contain the NUL character")]),
    ],
    ids=["limit-54000", "data-22001", "check-23514", "nul"],
)
async def test_a_record_the_database_always_refuses_is_dead_lettered_without_retries(
    refusal: Exception,
) -> None:
    stop = asyncio.Event()
    record = shipped(0)
    source, letters = DrainingSource([record], stop), InMemoryDeadLetters()
    handler = FakeHandler([refusal] * 10)
    await run(make_loop(source, letters, handler, stop, max_attempts=5))
    assert handler.calls == 1
    assert [(sent, error) for sent, _, error in letters.letters] == [(record, refusal)]
    assert not letters.letters[0][1].startswith("failed")
    assert source.committed == [record]


async def test_a_refused_record_in_a_batch_is_found_and_dead_lettered_alone() -> None:
    stop = asyncio.Event()
    records = [shipped(0), shipped(1), shipped(2)]
    source, letters = DrainingSource(records, stop), InMemoryDeadLetters()
    refused = Refused("54000", "index row requires 8216 bytes")
    handler = FakeHandler([refused, None, refused])  # batch, evt-0, evt-1 (then all succeed)
    await run(make_loop(source, letters, handler, stop, max_attempts=3))
    assert handler.calls == 4
    assert handler.applied == ["evt-0", "evt-2"]
    assert letters.letters == [
        (
            records[1],
            "the database refused it (SQLSTATE 54000): index row requires 8216 bytes",
            refused,
        )
    ]


@pytest.mark.parametrize(
    ("event_type", "label"),
    [("order.shipped", "order.shipped"), ("x" * 100, "other"), ("order.nonsense", "other")],
)
def test_metrics_label_event_types_from_a_closed_set(event_type: str, label: str) -> None:
    assert consumer_loop.type_label(event_type) == label
