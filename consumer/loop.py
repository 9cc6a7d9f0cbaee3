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
from collections.abc import Sequence
from typing import Literal

import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_not_exception_type,
    wait_random_exponential,
)
from tenacity.retry import retry_base

from app.db.inbox import Receipt
from app.domain.events import EventType
from app.events.cloudevents import IncomingEvent, from_kafka
from app.logs import correlation_id
from consumer import metrics
from consumer.failures import classify, reason
from consumer.handler import EventHandler, Ignored, Rejected, Result, Work
from consumer.kafka_io import DeadLetters, EventSource, Record

log = logging.getLogger("consumer")

POLL_TIMEOUT = 0.5
BACKOFF_BASE = 0.2
BACKOFF_MAX = 5.0


class Step(msgspec.Struct, frozen=True):
    """A record read as an event, and the work it asks for (None: ignored)."""

    record: Record
    event: IncomingEvent
    work: Work | None


def read(record: Record, handler: EventHandler) -> Step:
    """The record as an event and what it asks for; raises (PoisonMessage, or anything
    a hostile record provokes) if it cannot be read."""
    event = from_kafka(record.value, record.headers)
    plan = handler.plan(event, topic=record.topic, key=record.key)
    if isinstance(plan, Ignored):
        return Step(record, event, None)
    where = (record.topic, record.partition, record.offset)
    return Step(
        record, event, Work(event, plan, Receipt(event.source, event.id, event.type, *where))
    )


DeadLetterKind = Literal["poison", "failing"]
_EVENT_TYPES = frozenset(EventType)


class Stopped(Exception):
    """Shutdown was requested while a record was still being retried."""


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
                await self.process(await self._source.poll(self._batch_size, POLL_TIMEOUT))
        except Stopped:
            log.info("stopped while retrying; what is not done will be read again")
        finally:
            self._source.close()
            self._dead_letters.close()

    async def process(self, records: Sequence[Record]) -> None:
        """Apply records in order, marking each done once its effect (or its dead letter) is
        safe. Runs of events are applied in one transaction; poison splits the runs."""
        run: list[Step] = []
        for record in records:
            try:
                step = read(record, self._handler)
            # Whatever a record makes reading raise (RecursionError, UnicodeDecodeError, …),
            # the record is at fault: it is poison, not a reason to stop.
            except Exception as error:  # noqa: BLE001
                await self._settle(run)
                run = []
                await self._dead_letter(record, reason(error), error, "poison")
                self._source.done(record)
                continue
            run.append(step)
        await self._settle(run)

    async def _settle(self, steps: Sequence[Step]) -> None:
        started = time.perf_counter()
        todo = [step for step in steps if step.work is not None]
        together = len(todo) > 1 and await self._apply_together(todo, started)
        for step in steps:
            if step.work is None:
                metrics.EVENTS.labels(type_label(step.event.type), "ignored").inc()
            elif not together:
                await self._apply_with_retries(step, started)
            self._source.done(step.record)

    async def _apply_together(self, steps: list[Step], started: float) -> bool:
        """One transaction for them all; False if it failed (then: one at a time)."""
        try:
            results = await self._apply([s.work for s in steps if s.work], attempts=1)
        except Stopped:
            raise
        except Exception as exc:
            if self._stop.is_set():
                raise Stopped from exc
            log.warning("batch failed; applying its events one by one", extra={"error": repr(exc)})
            return False
        for step, (result, detail) in zip(steps, results, strict=True):
            self._report(step, result, detail, started)
        return True

    async def _apply_with_retries(self, step: Step, started: float) -> None:
        assert step.work is not None
        try:
            [(result, detail)] = await self._apply([step.work], attempts=self._max_attempts)
        except Stopped:
            raise
        except Exception as exc:
            if self._stop.is_set():
                raise Stopped from exc
            if classify(exc) == "poison":
                await self._dead_letter(step.record, reason(exc), exc, "poison")
            else:
                why = f"failed {self._max_attempts} times: {reason(exc)}"
                await self._dead_letter(step.record, why, exc, "failing")
            return
        self._report(step, result, detail, started)

    async def _apply(self, work: list[Work], *, attempts: int) -> list[tuple[Result, str | None]]:
        """Apply `work` under the one retry policy: outages are waited out for as long as
        they last, unforeseen failures are tried `attempts` times in all, poison not again."""
        unforeseen = 0

        def worth_retrying(error: BaseException) -> bool:
            nonlocal unforeseen
            verdict = classify(error)
            if verdict == "unforeseen":
                unforeseen += 1
                return unforeseen < attempts
            return verdict == "outage"

        async for attempt in self._retrying(retry=retry_if_exception(worth_retrying)):
            with attempt:
                return await self._handler.apply_all(work)
        raise AssertionError("unreachable: reraise=True")

    def _report(self, step: Step, result: Result, detail: str | None, started: float) -> None:
        assert step.work is not None
        metrics.EVENTS.labels(type_label(step.event.type), result).inc()
        metrics.PROCESSING.observe(time.perf_counter() - started)
        token = correlation_id.set(step.event.correlation_id)
        # An event its topic may not carry says someone wrote what they should not: louder.
        level = logging.WARNING if isinstance(step.work.plan, Rejected) else logging.INFO
        try:
            log.log(
                level,
                f"event {result}",
                extra={
                    "event_id": step.event.id,
                    "type": step.event.type,
                    "order_id": str(step.work.plan.order_id or ""),
                    "topic": step.record.topic,
                    "detail": detail,
                },
            )
        finally:
            correlation_id.reset(token)

    def _retrying(self, *, retry: retry_base) -> AsyncRetrying:
        """Backoff with full jitter, for as long as `retry` says; shutdown ends the waiting
        (raising Stopped)."""

        def stopping(state: RetryCallState) -> bool:
            if self._stop.is_set():
                raise Stopped
            return False

        return AsyncRetrying(
            retry=retry,
            stop=stopping,
            wait=wait_random_exponential(multiplier=BACKOFF_BASE, max=BACKOFF_MAX),
            sleep=self._sleep,
            before_sleep=_log_retry,
            reraise=True,
        )

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return

    async def _dead_letter(
        self, record: Record, why: str, error: BaseException, kind: DeadLetterKind
    ) -> None:
        """Send to the DLQ, waiting out a Kafka outage: the record must not be lost."""
        async for attempt in self._retrying(retry=retry_if_not_exception_type(Stopped)):
            with attempt:
                await self._dead_letters.send(record, why, error)
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


def type_label(event_type: str) -> str:
    """The metrics label for an event type: ours by name, anything else as `other`, so
    that senders cannot grow the number of time series without bound."""
    return event_type if event_type in _EVENT_TYPES else "other"


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("retrying", extra={"error": repr(error), "attempt": state.attempt_number})
