"""Which outbox shards this relay publishes: a fair share, re-balanced as relays come and go.

A shard is owned by at most one relay (an advisory lock), and a relay only
changes its shards between batches, so two relays never publish one key at
the same time: that is what keeps each key's events in commit order.
"""

from __future__ import annotations

import logging
import math

from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import leases
from app.db.locks import OUTBOX_SHARDS

log = logging.getLogger("relay.leases")


class ShardLeases:
    def __init__(self, conn: AsyncConnection, shard_count: int = OUTBOX_SHARDS) -> None:
        self._conn = conn
        self._count = shard_count
        self.slot = -1
        self.owned: set[int] = set()

    async def join(self) -> None:
        self.slot = await leases.join(self._conn)
        await self.rebalance()

    async def rebalance(self) -> None:
        """Give up shards beyond our fair share, or take free ones up to it."""
        relays = await leases.live_relays(self._conn)
        share = math.ceil(self._count / relays)
        before = set(self.owned)
        for shard in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]:
            await leases.release_shard(self._conn, shard)
            self.owned.discard(shard)
        if len(self.owned) < share:
            await self._take(share, relays)
        if self.owned != before:
            log.info(
                "relay shards changed",
                extra={"relays": relays, "shards": len(self.owned), "slot": self.slot},
            )

    async def _take(self, share: int, relays: int) -> None:
        # Each relay starts looking at a different place, so they rarely race for a shard.
        start = (self.slot * (self._count // relays)) % self._count
        order = [(start + offset) % self._count for offset in range(self._count)]
        for shard in await leases.free_shards(self._conn, order):
            if shard not in self.owned and await leases.acquire_shard(self._conn, shard):
                self.owned.add(shard)
                if len(self.owned) >= share:
                    return
