"""The consumer loop: poll a batch, apply each record, then mark it done.

A record is marked done (its offset stored for commit) only after its effects
are committed, or after it is safely on the DLQ. Failures are of two kinds:
the database being away, which is waited out however long it takes (the record
is fine; the world is not), and the record failing to apply, which is retried
a bounded number of times and then dead-lettered so its partition moves on.
"""

from __future__ import annotations

import asyncio
import logging
import time

from opentelemetry.trace import SpanKind
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_never,
    wait_random_exponential,
)
from tenacity.retry import retry_base
from tenacity.stop import stop_base

from app import telemetry
from app.db.inbox import Receipt
from app.domain.errors import Unavailable
from app.events.cloudevents import IncomingEvent, PoisonMessage, from_kafka
from app.logs import correlation_id
from consumer import metrics
from consumer.handler import EventHandler, Ignored, Plan, Result
from consumer.kafka_io import DeadLetters, EventSource, Record

log = logging.getLogger("consumer")

POLL_TIMEOUT = 0.5
BACKOFF_BASE = 0.2
BACKOFF_MAX = 5.0


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
                for record in await self._source.poll(self._batch_size, POLL_TIMEOUT):
                    if self._stop.is_set():
                        break  # not done, so not committed: read again after restart
                    await self.process(record)
                    self._source.done(record)
        except Stopped:
            log.info("stopped while retrying a record; it will be read again")
        finally:
            self._source.close()
            self._dead_letters.close()

    async def process(self, record: Record) -> None:
        """Apply one record, or dead-letter it. Returns once it may be marked done."""
        try:
            event = from_kafka(record.value, record.headers)
            plan = self._handler.plan(event)
        except PoisonMessage as poison:
            await self._dead_letter(record, poison.reason, poison)
            return
        if isinstance(plan, Ignored):
            metrics.EVENTS.labels(event.type, "ignored").inc()
            log.debug("event ignored", extra={"event_id": event.id, "why": plan.why})
            return
        receipt = Receipt(
            event.source, event.id, event.type, record.topic, record.partition, record.offset
        )
        token = correlation_id.set(event.correlation_id)
        started = time.perf_counter()
        try:
            with telemetry.span(
                f"process {event.type}",
                parent={"traceparent": event.traceparent} if event.traceparent else None,
                kind=SpanKind.CONSUMER,
                attributes={"messaging.message.id": event.id, "order.id": str(plan.order_id)},
            ):
                await self._apply_with_retries(record, event, plan, receipt)
        finally:
            correlation_id.reset(token)
            metrics.PROCESSING.observe(time.perf_counter() - started)

    async def _apply_with_retries(
        self, record: Record, event: IncomingEvent, plan: Plan, receipt: Receipt
    ) -> None:
        failing = self._retrying(
            retry=retry_if_not_exception_type((Unavailable, Stopped)),
            stop=stop_after_attempt(self._max_attempts),
        )
        try:
            async for attempt in failing:
                with attempt:
                    result, detail = await self._apply_waiting_out_outages(event, plan, receipt)
        except Stopped:
            raise
        except Exception as exc:
            if self._stop.is_set():
                raise Stopped from exc
            await self._dead_letter(record, f"failed {self._max_attempts} times", exc)
            return
        metrics.EVENTS.labels(receipt.event_type, result).inc()
        log.info(
            f"event {result}",
            extra={
                "event_id": receipt.event_id,
                "type": receipt.event_type,
                "order_id": str(plan.order_id),
                "detail": detail,
            },
        )

    async def _apply_waiting_out_outages(
        self, event: IncomingEvent, plan: Plan, receipt: Receipt
    ) -> tuple[Result, str | None]:
        async for attempt in self._retrying(
            retry=retry_if_exception_type(Unavailable), stop=stop_never
        ):
            with attempt:
                return await self._handler.apply(event, plan, receipt)
        raise AssertionError("unreachable: stop_never")

    def _retrying(self, *, retry: retry_base, stop: stop_base) -> AsyncRetrying:
        """Backoff with full jitter; shutdown ends the waiting (raising Stopped)."""

        def stopping(state: RetryCallState) -> bool:
            if self._stop.is_set():
                raise Stopped
            return stop(state)

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

    async def _dead_letter(self, record: Record, reason: str, error: BaseException) -> None:
        """Send to the DLQ, waiting out a Kafka outage: the record must not be lost."""
        async for attempt in self._retrying(
            retry=retry_if_not_exception_type(Stopped), stop=stop_never
        ):
            with attempt:
                await self._dead_letters.send(record, reason, error)
        metrics.DEAD_LETTERS.labels(
            "poison" if isinstance(error, PoisonMessage) else "failing"
        ).inc()
        log.error(
            "message dead-lettered",
            extra={"reason": reason, "partition": record.partition, "offset": record.offset},
        )


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("retrying", extra={"error": repr(error), "attempt": state.attempt_number})
