"""Which outbox shards this relay publishes: a fair share of leases that expire.

A shard is leased by at most one relay at a time (app/db/leases.py), for `ttl`
seconds, renewed at every `rebalance` (a few times per `ttl`). A relay that stops
making progress (paused, hung, cut off from the database) stops renewing, and after
`ttl` its shards are free for the live relays to take.

Locally, a relay trusts its leases only until `ttl` after it *sent* its last renewal,
less a margin: past that, `shards` is empty and nothing more is claimed until a
renewal succeeds. What it had already handed to Kafka by then is fenced by the
next owner: a lease taken after it expired names the relay it expired on, whose Kafka
producer the taker fences before publishing the shard (relay/transactional.py).
A relay only changes its shards between batches, so two relays never publish a
key at once through the database; fencing covers the relay that was frozen mid-batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from uuid import UUID

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import leases
from app.db.locks import OUTBOX_SHARDS

log = logging.getLogger("relay.leases")

RENEWALS_PER_TTL = 5  # a lease survives four missed renewals in a row
MARGIN = 0.1  # of ttl: we stop claiming this long before our lease could be taken


class Change(msgspec.Struct, frozen=True):
    """What a rebalance changed: leases taken (shard -> epoch) and shards no longer ours;
    `previous`: for a shard taken after its lease expired, the relay it expired on."""

    gained: dict[int, int]
    lost: frozenset[int]
    previous: dict[int, UUID] = msgspec.field(default_factory=dict)


class ShardLeases:
    def __init__(
        self,
        conn: AsyncConnection,
        relay_id: UUID,
        *,
        name: str,
        ttl: float,
        shard_count: int = OUTBOX_SHARDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self._id = relay_id
        self._name = name
        self._ttl = timedelta(seconds=ttl)
        self._count = shard_count
        self._clock = clock
        self.owned: dict[int, int] = {}  # shard -> epoch
        self.relays = 1
        self._valid_until = 0.0

    @property
    def relay_id(self) -> UUID:
        """Whose leases these are: the owner the database checks each claim against."""
        return self._id

    @property
    def renew_every(self) -> float:
        return self._ttl.total_seconds() / RENEWALS_PER_TTL

    @property
    def shards(self) -> list[int]:
        """The shards we may claim from now: none once our leases might have run out."""
        return sorted(self.owned) if self._clock() < self._valid_until else []

    async def rebalance(self) -> Change:
        """Renew our leases; give up shards beyond our fair share, or take free ones up to it."""
        sent = self._clock()
        membership, renewed = await leases.heartbeat(self._conn, self._id, self._name, self._ttl)
        ttl = self._ttl.total_seconds()
        self._valid_until = sent + ttl * (1 - MARGIN)
        lost = {shard for shard, epoch in self.owned.items() if renewed.get(shard) != epoch}
        # Leases renewed that we did not know of: ours from before a reconnection.
        kept = {shard: epoch for shard, epoch in renewed.items() if self.owned.get(shard) != epoch}
        self.owned, self.relays = renewed, membership.relays
        share = math.ceil(self._count / membership.relays)
        surplus = sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]
        await leases.release(self._conn, self._id, surplus)
        for shard in surplus:
            del self.owned[shard]
        lost.update(surplus)
        taken = await leases.take(
            self._conn, self._id, self._search_order(membership), share - len(self.owned), self._ttl
        )
        gained = {shard: lease.epoch for shard, lease in taken.items()}
        self.owned.update(gained)
        # Our own expired lease taken back: we are between batches, with nothing to fence.
        previous = {
            shard: lease.previous
            for shard, lease in taken.items()
            if lease.previous is not None and lease.previous != self._id
        }
        gained.update({shard: epoch for shard, epoch in kept.items() if shard in self.owned})
        if gained or lost:
            log.info(
                "relay shards changed",
                extra={
                    "relays": membership.relays,
                    "shards": len(self.owned),
                    "taken": sorted(gained),
                    "lost": sorted(lost),
                },
            )
        return Change(gained, frozenset(lost), previous)

    def drop(self, shards: Iterable[int]) -> None:
        """Forget shards we learnt are no longer ours (our producer for them was fenced)."""
        for shard in shards:
            self.owned.pop(shard, None)

    async def leave(self) -> None:
        """Hand every lease back at once (a clean stop), so no one waits for them to expire."""
        await leases.leave(self._conn, self._id)
        self.owned = {}

    def _search_order(self, membership: leases.Membership) -> list[int]:
        # Each relay starts looking at a different place, so they rarely race for a shard.
        start = (membership.rank * (self._count // membership.relays)) % self._count
        return [(start + offset) % self._count for offset in range(self._count)]
