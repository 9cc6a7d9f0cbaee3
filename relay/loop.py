"""The relay loop: claim a batch, publish it, mark what Kafka acknowledged, repeat.

A batch is claimed, published and settled before the next is claimed, so at
any moment at most one batch per relay is in flight, and shard hand-overs
(between batches) never split a key across two relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_not_exception_type,
    wait_random_exponential,
)

from app.config import RelaySettings
from app.db import outbox
from app.db.outbox import ClaimedMessage
from relay import metrics
from relay.leases import ShardLeases
from relay.publisher import Delivery, FatalPublishError, Publisher
from relay.wakeup import Wakeup

log = logging.getLogger("relay")

REBALANCE_EVERY = 2.0
GAUGES_EVERY = 5.0
BACKOFF_MAX = 30.0
PRUNE_EVERY = 60.0
PRUNE_BATCH = 1000
PRUNE_ROUNDS = 20  # at most PRUNE_ROUNDS * PRUNE_BATCH rows per pass, so publishing is not starved


@dataclass
class Settled:
    claimed: int = 0
    published: int = 0
    failed: int = 0


class Relay:
    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher,
        wakeup: Wakeup | None,
        settings: RelaySettings,
        stop: asyncio.Event,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._wakeup = wakeup
        self._settings = settings
        self._stop = stop

    async def run(self) -> None:
        """Relay until stopped. Database trouble is waited out; a fatal Kafka error is raised."""
        retrying = AsyncRetrying(
            retry=retry_if_not_exception_type(FatalPublishError),
            wait=wait_random_exponential(multiplier=0.2, max=5),
            stop=lambda _: self._stop.is_set(),
            before_sleep=_log_retry,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._serve()
        except RetryError:
            log.info("relay stopped while waiting to retry")
        finally:
            if self._wakeup is not None:
                await self._wakeup.close()

    async def _serve(self) -> None:
        # One session for leases, claims and marks: while it can claim, it still owns its
        # shards. It is never returned to a pool: its advisory locks must end with it.
        raw = await self._engine.connect()
        try:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            leases = ShardLeases(conn)
            await leases.join()
            log.info("relay started", extra={"slot": leases.slot, "shards": len(leases.owned)})
            next_rebalance = next_prune = next_gauges = 0.0
            failing = 0  # batches in a row with failed deliveries
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_rebalance:
                    await leases.rebalance()
                    metrics.SHARDS.set(len(leases.owned))
                    next_rebalance = now + REBALANCE_EVERY
                if now >= next_gauges:
                    rows, age = await outbox.backlog(conn)
                    metrics.BACKLOG.set(rows)
                    metrics.OLDEST_AGE.set(age)
                    next_gauges = now + GAUGES_EVERY
                if now >= next_prune:
                    await self._prune(conn)
                    next_prune = now + PRUNE_EVERY
                settled = await self.relay_once(conn, sorted(leases.owned))
                failing = failing + 1 if settled.failed else 0
                if failing:
                    await self._back_off(failing)  # let the cause clear
                elif settled.claimed < self._settings.batch_size:
                    await self._idle()
        finally:
            await raw.invalidate()
            await raw.close()

    async def relay_once(self, conn: AsyncConnection, shards: Sequence[int]) -> Settled:
        """Claim, publish and settle one batch of the given shards."""
        if not shards:
            return Settled()
        started = time.perf_counter()
        batch = await outbox.claim_batch(conn, shards, self._settings.batch_size)
        if not batch:
            return Settled()
        deliveries = await self._publisher.publish(batch, self._stop.is_set)
        settled = await self._settle(conn, batch, deliveries)
        metrics.BATCHES.inc()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return settled

    async def _settle(
        self, conn: AsyncConnection, batch: list[ClaimedMessage], deliveries: list[Delivery]
    ) -> Settled:
        delivered = [d.id for d in deliveries if d.error is None]
        failures = [d for d in deliveries if d.error is not None]
        await outbox.mark_published(conn, delivered)
        _observe_published(batch, set(delivered))
        for failure in failures:
            await outbox.record_failure(
                conn, failure.id, failure.error or "", park=failure.permanent
            )
            metrics.FAILED.labels(str(failure.permanent).lower()).inc()
            log.error(
                "publish failed",
                extra={
                    "outbox_id": str(failure.id),
                    "error": failure.error,
                    "parked": failure.permanent,
                },
            )
        return Settled(claimed=len(batch), published=len(delivered), failed=len(failures))

    async def _idle(self) -> None:
        timeout = self._settings.poll_interval
        if self._wakeup is not None:
            await self._wakeup.wait(timeout)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout)

    async def _back_off(self, attempt: int) -> None:
        """Exponential backoff with full jitter, capped, cut short by shutdown."""
        delay = random.uniform(0, min(BACKOFF_MAX, self._settings.poll_interval * 2**attempt))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    async def _prune(self, conn: AsyncConnection) -> None:
        retention = self._settings.retention
        total = 0
        for _ in range(PRUNE_ROUNDS):
            pruned = await outbox.prune_published(conn, retention, PRUNE_BATCH)
            total += pruned
            if pruned < PRUNE_BATCH or self._stop.is_set():
                break
        if total:
            log.info("pruned published outbox rows", extra={"rows": total})


def _observe_published(batch: list[ClaimedMessage], delivered: set[UUID]) -> None:
    now = datetime.now(UTC)
    for message in batch:
        if message.id in delivered:
            metrics.PUBLISHED.labels(message.topic).inc()
            metrics.PUBLISH_LATENCY.observe((now - message.created_at).total_seconds())


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "relay interrupted; retrying", extra={"error": repr(error), "attempt": state.attempt_number}
    )
