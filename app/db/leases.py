"""Shard leases for relays: session-level advisory locks, released if the session dies.

Each live relay holds one presence lock; together they say how many relays
share the outbox's shards, and each relay takes its fair part of the shards.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.locks import RELAY_PRESENCE, RELAY_SHARD

MAX_RELAYS = 256

_HELD = text("""
    SELECT objid::int AS key FROM pg_locks
     WHERE locktype = 'advisory' AND classid = CAST(:class AS oid) AND objsubid = 2 AND granted
""")


async def _try_lock(conn: AsyncConnection, lock_class: int, key: int) -> bool:
    result = await conn.execute(
        text("SELECT pg_try_advisory_lock(:c, :k)"), {"c": lock_class, "k": key}
    )
    return bool(result.scalar_one())


async def _held(conn: AsyncConnection, lock_class: int) -> set[int]:
    return {row.key for row in await conn.execute(_HELD, {"class": lock_class})}


async def join(conn: AsyncConnection) -> int:
    """Take a free presence slot for this session; return it."""
    taken = await _held(conn, RELAY_PRESENCE)
    for slot in range(MAX_RELAYS):
        if slot not in taken and await _try_lock(conn, RELAY_PRESENCE, slot):
            return slot
    raise RuntimeError(f"more than {MAX_RELAYS} relays are running")


async def live_relays(conn: AsyncConnection) -> int:
    return max(1, len(await _held(conn, RELAY_PRESENCE)))


async def free_shards(conn: AsyncConnection, shards: Iterable[int]) -> list[int]:
    taken = await _held(conn, RELAY_SHARD)
    return [shard for shard in shards if shard not in taken]


async def acquire_shard(conn: AsyncConnection, shard: int) -> bool:
    return await _try_lock(conn, RELAY_SHARD, shard)


async def release_shard(conn: AsyncConnection, shard: int) -> None:
    await conn.execute(text("SELECT pg_advisory_unlock(:c, :k)"), {"c": RELAY_SHARD, "k": shard})
