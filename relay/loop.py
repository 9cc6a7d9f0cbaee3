"""The relay loop: claim a batch, publish it, mark what Kafka acknowledged, repeat.

While Kafka takes batch N, batch N+1 is claimed: the rows that follow N's, later rows of
N's keys included. N+1 goes out once Kafka has answered for N, without the keys of any of
N's rows that did not go out (they are claimed again, in order, later); then N is marked.
So a key's events reach Kafka in commit order, a refused event still holds back its key,
and shards change hands only with nothing in flight, so a hand-over never splits a key
across two relays. Leases are renewed between batches too (relay/leases.py): a relay stuck
anywhere in this loop stops renewing and loses its shards; its producer is fenced by the
relay that takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
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
from app.events.message import OutboxMessage
from relay import metrics
from relay.housekeeping import Housekeeping
from relay.leases import Change, ShardLeases
from relay.publisher import Delivery, FatalPublishError, Publisher, Sending

log = logging.getLogger("relay")

WAKE_LINGER = 0.003  # seconds
BACKOFF_MAX = 30.0


class Waking(Protocol):
    """What tells the relay that rows were committed (app.db.wakeup.Wakeup)."""

    async def wait(self, timeout: float, after: float) -> bool:
        """True if woken, before `timeout` seconds, by a wake-up after `after` (one that
        came earlier counts if it came after `after`); False on the timeout (poll anyway)."""
        ...

    def rung_after(self, moment: float) -> bool:
        """Whether a wake-up came after `moment` (`time.monotonic()`); never blocks."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Claimed:
    """A claimed batch, not yet handed to the publisher."""

    messages: list[ClaimedMessage]
    ids: str  # their ids, one uuid[] literal: what a claim beside them leaves out
    started: float
    partial: bool  # its claim stopped at its limit: rows may be left


@dataclass(frozen=True)
class InFlight:
    """A claimed batch handed to the publisher, not yet settled."""

    claimed: Claimed
    sending: Sending


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
        wakeup: Waking,
        settings: RelaySettings,
        stop: asyncio.Event,
        relay_id: UUID | None = None,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._wakeup = wakeup
        self._settings = settings
        self._stop = stop
        # One identity for the process's life (its publisher's too): after a reconnection,
        # leases not yet expired are renewed, not taken anew.
        self._id = relay_id or uuid.uuid4()
        self._name = f"{socket.gethostname()}-{os.getpid()}"
        # When a claim last read every row of every shard we hold (time.monotonic()): what
        # was committed before it is claimed, so only a wake-up after it means new rows.
        self._looked_at = -math.inf

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
            await self._wakeup.close()

    async def _serve(self) -> None:
        # One session for leases, claims and marks. Leases are rows that expire, not
        # session locks: a session that dies (or is abandoned) leaves them to expire.
        raw = await self._engine.connect()
        housekeeping = asyncio.create_task(
            Housekeeping(self._engine, self._settings, self._stop).run()
        )
        try:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            leases = ShardLeases(conn, self._id, name=self._name, ttl=self._settings.lease_ttl)
            await self._rebalance(leases)
            log.info(
                "relay started", extra={"relay_id": str(self._id), "shards": len(leases.owned)}
            )
            await self._pump(conn, leases)
            await self._publisher.assign(Change({}, frozenset(leases.owned)))
            await leases.leave()  # a clean stop: the others take the shards at once
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            await raw.invalidate()
            await raw.close()

    async def _rebalance(self, leases: ShardLeases) -> None:
        change = await leases.rebalance()
        self._looked_at = -math.inf  # shards gained come with rows no claim has read
        # Before anything of a gained shard is claimed, its last owner is fenced; and a
        # fenced producer is opened again only here, right after a renewal.
        await self._publisher.assign(change)
        metrics.SHARDS_LOST.inc(len(change.lost))
        metrics.SHARDS.set(len(leases.owned))

    async def _pump(self, conn: AsyncConnection, leases: ShardLeases) -> None:
        """Claim batch N+1 while Kafka acknowledges batch N, send it once N has gone out,
        then settle N."""
        in_flight: InFlight | None = None
        next_rebalance = 0.0
        failing = 0  # batches in a row with failed deliveries
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_rebalance:  # shards only change hands with nothing in flight
                    failing = _count(failing, await self.land(conn, in_flight, leases))
                    in_flight = None
                    await self._rebalance(leases)
                    next_rebalance = now + leases.renew_every
                claimed = None
                if (
                    in_flight is None
                    or in_flight.claimed.partial
                    or self._wakeup.rung_after(self._looked_at)
                ):
                    # While a batch is in flight, claim only what may be there: what its
                    # claim left, or rows committed since the last full look (they rang).
                    # At a trickle a claim overlapping every batch would find nothing.
                    claimed = await self.claim(conn, leases, in_flight)
                left_rows = in_flight is not None and in_flight.claimed.partial
                sending, settled = await self.advance(conn, leases, in_flight, claimed)
                failing = _count(failing, settled)
                in_flight = sending
                if failing:
                    await self._back_off(failing)  # let the cause clear
                elif sending is None and not left_rows:
                    # Wait for rows committed after the last full look; a wake-up that
                    # came meanwhile returns at once. After a batch that stopped at its
                    # limit (a backlog) the claim is tried again at once.
                    await self._idle()
        finally:
            await self.land(conn, in_flight, leases)

    async def claim(
        self, conn: AsyncConnection, leases: ShardLeases, beside: InFlight | None = None
    ) -> Claimed | None:
        """Claim a batch of the shards `leases` hold: the oldest rows, after those of the
        batch in flight (`beside`); None if there was nothing to claim."""
        shards = leases.shards
        if not shards:
            return None
        started = time.perf_counter()
        looking = time.monotonic()
        in_flight = outbox.NOTHING if beside is None else beside.claimed.ids
        claim = await outbox.claim(
            conn, shards, self._settings.batch_size, in_flight, owner=leases.relay_id
        )
        if not claim.more:
            self._looked_at = looking  # every row of every shard we hold, as of `looking`
        if not claim.messages:
            return None
        return Claimed(claim.messages, claim.ids, started, claim.more)

    async def send(self, claimed: Claimed | None) -> InFlight | None:
        """Hand `claimed` to the publisher (it returns before Kafka answers)."""
        if claimed is None:
            return None
        batch = _by_shard(claimed.messages)
        return InFlight(claimed, await self._publisher.send(batch))

    async def claim_and_send(self, conn: AsyncConnection, leases: ShardLeases) -> InFlight | None:
        """Claim a batch, with nothing in flight, and hand it to the publisher."""
        return await self.send(await self.claim(conn, leases))

    async def land(
        self, conn: AsyncConnection, in_flight: InFlight | None, leases: ShardLeases
    ) -> Settled:
        """Wait for Kafka's answers on the batch in flight and record them."""
        return (await self.advance(conn, leases, in_flight, None))[1]

    async def advance(
        self,
        conn: AsyncConnection,
        leases: ShardLeases,
        in_flight: InFlight | None,
        claimed: Claimed | None,
    ) -> tuple[InFlight | None, Settled]:
        """Once Kafka has answered for `in_flight`, send `claimed` (claimed beside it) in its
        place, then record the answers; shards found fenced are dropped from `leases`.

        Rows of `claimed` whose key has a row of `in_flight` that did not go out stay
        unpublished, claimed again later behind it; after a fence, or once stopping,
        `claimed` is not sent at all."""
        if in_flight is None:
            return await self.send(claimed), Settled()
        deliveries = await self._publisher.wait(in_flight.sending, self._stop.is_set)
        fenced = in_flight.sending.fenced
        if fenced:  # another relay owns these shards now: hands off
            metrics.FENCED.inc(len(fenced))
            log.warning(
                "fenced: shards taken over by another relay", extra={"shards": sorted(fenced)}
            )
            leases.drop(fenced)
        delivered = {d.id for d in deliveries if d.error is None}
        batch = in_flight.claimed.messages
        held = {c.message.key for c in batch if c.message.id not in delivered}
        if held:
            self._looked_at = -math.inf  # rows were left: claim again before waiting
        if claimed is not None and (fenced or self._stop.is_set()):
            claimed = None
        elif claimed is not None and held:
            claimed = _without(claimed, held)
        sending = await self.send(claimed)
        settled = await self._settle(conn, in_flight.claimed, deliveries, delivered)
        metrics.BATCHES.inc()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - in_flight.claimed.started)
        return sending, settled

    async def _settle(
        self,
        conn: AsyncConnection,
        claimed: Claimed,
        deliveries: list[Delivery],
        delivered: set[UUID],
    ) -> Settled:
        """Mark what was `delivered` (a whole batch by the ids its claim gave) and record
        what failed."""
        batch = claimed.messages
        failures = [d for d in deliveries if d.error is not None]
        whole = len(delivered) == len(batch)
        await outbox.mark_published(conn, claimed.ids if whole else list(delivered))
        _observe_published(batch, delivered)
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
        if await self._wakeup.wait(self._settings.poll_interval, after=self._looked_at):
            # Commits come in bursts: a moment's wait turns many one-row batches into one.
            await asyncio.sleep(WAKE_LINGER)

    async def _back_off(self, attempt: int) -> None:
        """Exponential backoff with full jitter, capped, cut short by shutdown."""
        delay = random.uniform(0, min(BACKOFF_MAX, self._settings.poll_interval * 2**attempt))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)


def _without(claimed: Claimed, keys: set[str]) -> Claimed | None:
    """`claimed` without the rows of `keys` (they wait behind rows that did not go out)."""
    kept = [c for c in claimed.messages if c.message.key not in keys]
    if not kept:
        return None
    ids = outbox.ids_literal(c.message.id for c in kept)  # what is in flight: exactly these
    return Claimed(kept, ids, claimed.started, claimed.partial)


def _by_shard(batch: list[ClaimedMessage]) -> dict[int, list[OutboxMessage]]:
    """The claimed messages grouped by shard, each key's kept in commit order."""
    grouped: dict[int, list[OutboxMessage]] = {}
    for claimed in batch:
        grouped.setdefault(claimed.shard, []).append(claimed.message)
    return grouped


def _observe_published(batch: list[ClaimedMessage], delivered: set[UUID]) -> None:
    """Per batch, not per message: counting is cheap, a histogram sample per message is not."""
    published = [claimed for claimed in batch if claimed.message.id in delivered]
    if not published:
        return
    for topic, count in Counter(claimed.message.topic for claimed in published).items():
        metrics.PUBLISHED.labels(topic).inc(count)
    oldest = min(claimed.created_at for claimed in published)
    metrics.PUBLISH_LATENCY.observe((datetime.now(UTC) - oldest).total_seconds())


def _count(failing: int, settled: Settled) -> int:
    """Batches in a row with failed deliveries, after one more was settled."""
    if not settled.claimed:
        return failing
    return failing + 1 if settled.failed else 0


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "relay interrupted; retrying", extra={"error": repr(error), "attempt": state.attempt_number}
    )
