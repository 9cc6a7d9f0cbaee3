"""Test doubles for the relay: a publisher that keeps what it is given, a wake-up that never
rings, and one batch on demand.

Production never imports this module; tests use it in place of Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from app.events.message import OutboxMessage
from relay.leases import Change, ShardLeases
from relay.loop import Relay, Settled
from relay.publisher import Batch, Delivery, Sending, flatten

LEASE_SECONDS = 60.0  # far longer than one batch takes


class InMemoryPublisher:
    """Keeps what it was given; can be told to refuse messages (`refuse[id] = Delivery`)."""

    def __init__(self) -> None:
        self.sent: list[OutboxMessage] = []
        self.refuse: dict[UUID, Delivery] = {}
        self.shards: dict[int, int] = {}  # shard -> epoch, as the leases told us

    async def send(self, batch: Batch) -> Sending:
        messages = flatten(batch)
        sending = Sending(messages, expected=len(messages))
        for message in messages:
            refusal = self.refuse.get(message.id)
            if refusal is None:
                self.sent.append(message)
            sending.results[message.id] = refusal or Delivery(message.id)
        return sending

    async def wait(self, sending: Sending, should_stop: Callable[[], bool]) -> list[Delivery]:
        return sending.deliveries()

    async def assign(self, change: Change) -> None:
        for shard in change.lost:
            self.shards.pop(shard, None)
        self.shards.update(change.gained)

    def close(self, timeout: float) -> None:
        return None


class Polling:
    """No notifications: every wait runs to its timeout (the relay polls), or until `stop`."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    async def wait(self, timeout: float, after: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout)
        return False

    def rung_after(self, moment: float) -> bool:
        return False

    async def close(self) -> None:
        return None


async def relay_once(relay: Relay, conn: AsyncConnection) -> Settled:
    """One batch, as a lone relay would publish it: take every shard's lease, claim, publish
    and settle once (the loop's own two steps, without pipelining), then hand the shards back."""
    leases = ShardLeases(conn, uuid.uuid4(), name="test", ttl=LEASE_SECONDS)
    await leases.rebalance()
    try:
        return await relay.land(conn, await relay.claim_and_send(conn, leases), leases)
    finally:
        await leases.leave()
