"""The relay's housekeeping: backlog gauges and pruning, on a connection of their own.

Both used to run between batches on the relay's one connection, and each could hold up
publishing: counting the backlog read the whole outbox when the planner's statistics
were stale (~60 ms after a 100,000-row drain, every 5 s — a beat of publishes delayed by
that much), and a prune pass deletes up to 20,000 rows. Here they run beside the relay,
so a claim never waits for them; PostgreSQL's row locks keep the two apart (pruning only
touches rows published long ago, which no claim reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import RelaySettings
from app.db import outbox
from relay import metrics

log = logging.getLogger("relay")

GAUGES_EVERY = 5.0  # seconds
PRUNE_EVERY = 12  # gauge rounds: a minute
PRUNE_BATCH = 1000
PRUNE_ROUNDS = 20  # at most PRUNE_ROUNDS * PRUNE_BATCH rows per pass, then the next minute


class Housekeeping:
    def __init__(self, engine: AsyncEngine, settings: RelaySettings, stop: asyncio.Event) -> None:
        self._engine = engine
        self._settings = settings
        self._stop = stop

    async def run(self) -> None:
        """Until stopped: gauges every GAUGES_EVERY seconds, a prune pass every minute.
        Database trouble only skips a round (the relay's own loop waits it out)."""
        rounds = 0
        while not self._stop.is_set():
            try:
                async with self._engine.connect() as raw:
                    conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
                    await self._gauges(conn)
                    if rounds % PRUNE_EVERY == 0:
                        await self.prune(conn)
            except Exception as exc:  # noqa: BLE001 - gauges and pruning are best effort:
                # whatever failed (a lost or abandoned connection, a deadline), the next round
                # tries again, and the relay's own loop deals with the database being gone.
                log.warning("relay housekeeping skipped a round", extra={"error": repr(exc)})
            rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), GAUGES_EVERY)

    async def _gauges(self, conn: AsyncConnection) -> None:
        rows, age = await outbox.backlog(conn)
        metrics.BACKLOG.set(rows)
        metrics.OLDEST_AGE.set(age)

    async def prune(self, conn: AsyncConnection) -> None:
        """Delete rows published longer than the retention ago, a bounded amount per pass."""
        total = 0
        for _ in range(PRUNE_ROUNDS):
            pruned = await outbox.prune_published(conn, self._settings.retention, PRUNE_BATCH)
            total += pruned
            if pruned < PRUNE_BATCH or self._stop.is_set():
                break
        if total:
            log.info("pruned published outbox rows", extra={"rows": total})
