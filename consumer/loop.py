"""The consumer loop: poll a batch, apply each record, then mark it done.

A record is marked done (its offset stored for commit) only after its effects
are committed, or after it is safely on the DLQ. No record can stop the loop:
whatever reading, decoding or planning it raises makes it poison (to the DLQ at
once), and a failure to apply it is classified once (`consumer.failures`):
an outage is waited out however long it takes (the record is fine; the world is
not), poison goes to the DLQ at once, anything unforeseen is tried a bounded
number of times and then dead-lettered, so its partition moves on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar, assert_never

import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    wait_random_exponential,
)
from tenacity.retry import retry_base

from app.db.inbox import Receipt
from app.domain.events import EventType
from app.events.cloudevents import IncomingEvent, from_kafka
from app.logs import correlation_id
from consumer import metrics
from consumer.failures import classify, reason
from consumer.handler import (
    Applied,
    Duplicate,
    EventHandler,
    Ignored,
    Outcome,
    Rejected,
    Untrusted,
    Work,
)
from consumer.kafka_io import DeadLetters, EventSource, Record

log = logging.getLogger("consumer")

POLL_TIMEOUT = 0.5
BACKOFF_BASE = 0.2
BACKOFF_MAX = 5.0
T = TypeVar("T")


# A record read as an event is one of these cases.


class Skip(msgspec.Struct, frozen=True):
    """An event we do not act on (Ignored): marked done, counted, nothing written."""

    record: Record
    event: IncomingEvent


class Apply(msgspec.Struct, frozen=True):
    """An event to apply or record as rejected."""

    record: Record
    work: Work


Step = Skip | Apply


class Interrupted(msgspec.Struct, frozen=True):
    """Shutdown came while a record was still being retried: it is not done, and is read
    again by whoever consumes its partition next."""


INTERRUPTED = Interrupted()


def read(record: Record, handler: EventHandler) -> Step:
    """The record as an event and what it asks for; raises (PoisonMessage, or anything
    a hostile record provokes) if it cannot be read."""
    event = from_kafka(record.value, record.headers)
    decision = handler.plan(event, topic=record.topic, key=record.key)
    if isinstance(decision, Ignored):
        return Skip(record, event)
    where = (record.topic, record.partition, record.offset)
    receipt = Receipt(event.source, event.id, event.type, *where)
    return Apply(record, Work(event, decision, receipt))


DeadLetterKind = Literal["poison", "failing"]
_EVENT_TYPES = frozenset(EventType)


class ConsumerLoop:
    def __init__(
        self,
        source: EventSource,
        dead_letters: DeadLetters,
        handler: EventHandler,
        *,
        batch_size: int,
        max_attempts: int,
        stop: asyncio.Event,
    ) -> None:
        self._source = source
        self._dead_letters = dead_letters
        self._handler = handler
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._stop = stop

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                records = await self._source.poll(self._batch_size, POLL_TIMEOUT)
                if await self.process(records) is INTERRUPTED:
                    log.info("stopped while retrying; what is not done will be read again")
                    return
        finally:
            self._source.close()
            self._dead_letters.close()

    async def process(self, records: Sequence[Record]) -> Interrupted | None:
        """Apply records in order, marking each done once its effect (or its dead letter) is
        safe. Runs of events are applied in one transaction; poison splits the runs.
        INTERRUPTED if shutdown came first: the records from the one being retried on are
        not marked done."""
        run: list[Step] = []
        for record in records:
            try:
                step = read(record, self._handler)
            # Whatever a record makes reading raise (RecursionError, UnicodeDecodeError, …),
            # the record is at fault: it is poison, not a reason to stop.
            except Exception as error:  # noqa: BLE001
                if await self._settle(run) is INTERRUPTED:
                    return INTERRUPTED
                run = []
                if await self._dead_letter(record, reason(error), error, "poison") is INTERRUPTED:
                    return INTERRUPTED
                self._source.done(record)
                continue
            run.append(step)
        return await self._settle(run)

    async def _settle(self, steps: Sequence[Step]) -> Interrupted | None:
        started = time.perf_counter()
        todo = [step for step in steps if isinstance(step, Apply)]
        together = len(todo) > 1 and await self._apply_together(todo, started)
        if together is INTERRUPTED:
            return INTERRUPTED
        for step in steps:
            match step:
                case Skip(event=event):
                    metrics.EVENTS.labels(type_label(event.type), "ignored").inc()
                case Apply() if not together:
                    if await self._apply_alone(step, started) is INTERRUPTED:
                        return INTERRUPTED
                case Apply():
                    pass  # applied with the others
                case _:
                    assert_never(step)
            self._source.done(step.record)
        return None

    async def _apply_together(self, steps: list[Apply], started: float) -> bool | Interrupted:
        """One transaction for them all; False if it failed (then: one at a time)."""
        try:
            outcomes = await self._apply([step.work for step in steps], attempts=1)
        except Exception as exc:  # noqa: BLE001 - any failure: find the culprit alone
            if self._stop.is_set():
                return INTERRUPTED
            log.warning("batch failed; applying its events one by one", extra={"error": repr(exc)})
            return False
        if isinstance(outcomes, Interrupted):
            return outcomes
        for step, outcome in zip(steps, outcomes, strict=True):
            self._report(step, outcome, started)
        return True

    async def _apply_alone(self, step: Apply, started: float) -> Interrupted | None:
        """Apply one event; what keeps failing goes to the DLQ, so its partition moves on."""
        try:
            outcomes = await self._apply([step.work], attempts=self._max_attempts)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the record is dead-lettered
            if self._stop.is_set():
                return INTERRUPTED
            if classify(exc) == "poison":
                return await self._dead_letter(step.record, reason(exc), exc, "poison")
            why = f"failed {self._max_attempts} times: {reason(exc)}"
            return await self._dead_letter(step.record, why, exc, "failing")
        if isinstance(outcomes, Interrupted):
            return outcomes
        [outcome] = outcomes
        self._report(step, outcome, started)
        return None

    async def _apply(self, work: list[Work], *, attempts: int) -> list[Outcome] | Interrupted:
        """Apply `work` under the one retry policy: outages are waited out for as long as
        they last, unforeseen failures are tried `attempts` times in all, poison not again
        (the failure is raised)."""
        unforeseen = 0

        def worth_retrying(error: BaseException) -> bool:
            nonlocal unforeseen
            verdict = classify(error)
            if verdict == "unforeseen":
                unforeseen += 1
                return unforeseen < attempts
            return verdict == "outage"

        return await self._retrying(
            retry_if_exception(worth_retrying), lambda: self._handler.apply_all(work)
        )

    def _report(self, step: Apply, outcome: Outcome, started: float) -> None:
        event, plan = step.work.event, step.work.plan
        result, detail = _described(outcome)
        metrics.EVENTS.labels(type_label(event.type), result).inc()
        metrics.PROCESSING.observe(time.perf_counter() - started)
        token = correlation_id.set(event.correlation_id)
        # An event its topic may not carry says someone wrote what they should not: louder.
        level = logging.WARNING if isinstance(plan, Untrusted) else logging.INFO
        try:
            log.log(
                level,
                f"event {result}",
                extra={
                    "event_id": event.id,
                    "type": event.type,
                    "order_id": str(plan.order_id or ""),
                    "topic": step.record.topic,
                    "detail": detail,
                },
            )
        finally:
            correlation_id.reset(token)

    async def _retrying(
        self, retry: retry_base, call: Callable[[], Awaitable[T]]
    ) -> T | Interrupted:
        """`call()` until it succeeds, backing off with full jitter for as long as `retry`
        says (a failure it does not retry is raised); INTERRUPTED once shutdown is asked for."""
        retrying = AsyncRetrying(
            retry=retry,
            stop=lambda _: self._stop.is_set(),
            wait=wait_random_exponential(multiplier=BACKOFF_BASE, max=BACKOFF_MAX),
            sleep=self._sleep,
            before_sleep=_log_retry,
            retry_error_callback=lambda _: INTERRUPTED,
        )

        async def attempt() -> T:  # a coroutine function: tenacity awaits only those
            return await call()

        return await retrying(attempt)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return

    async def _dead_letter(
        self, record: Record, why: str, error: BaseException, kind: DeadLetterKind
    ) -> Interrupted | None:
        """Send to the DLQ, waiting out a Kafka outage: the record must not be lost."""
        sent = await self._retrying(
            retry_if_exception_type(), lambda: self._dead_letters.send(record, why, error)
        )
        if sent is INTERRUPTED:
            return INTERRUPTED
        metrics.DEAD_LETTERS.labels(kind).inc()
        log.error(
            "message dead-lettered",
            extra={
                "reason": why,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
        )
        return None


def _described(outcome: Outcome) -> tuple[str, str | None]:
    """The metrics label and log detail of an outcome."""
    match outcome:
        case Applied(detail=detail):
            return "applied", detail
        case Duplicate():
            return "duplicate", None
        case Rejected(why=why):
            return "rejected", why
        case _:
            assert_never(outcome)


def type_label(event_type: str) -> str:
    """The metrics label for an event type: ours by name, anything else as `other`, so
    that senders cannot grow the number of time series without bound."""
    return event_type if event_type in _EVENT_TYPES else "other"


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("retrying", extra={"error": repr(error), "attempt": state.attempt_number})
