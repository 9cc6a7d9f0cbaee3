"""Shard leases for relays: rows that expire (migration 0004), not session locks.

A relay is a member while it renews its `relay_members` row; it owns a shard while
it renews that shard's `relay_leases` row. Both carry `expires_at` on the database's
clock, so no two relays need agree on time. A lease that has expired may be taken by
any relay, and taking it bumps its `epoch`; the taker learns whose lease it was, so that
its publisher can fence that relay's transactional producer in Kafka (relay/transactional.py)
before publishing the shard. A lease handed back (`release`, `leave`) has no owner left:
there is nothing to fence.

Invariant: at any moment at most one relay holds an unexpired lease on a shard (the
UPDATEs below take a lease only if it is free or expired, row-locked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

Epochs = Mapping[int, int]  # shard -> epoch of our lease on it


class Taken(msgspec.Struct, frozen=True):
    """A lease just taken: its new epoch, and the relay whose expired lease it was
    (None: it was free, handed back between that relay's batches)."""

    epoch: int
    previous: UUID | None


class Membership(msgspec.Struct, frozen=True):
    relays: int  # live relays, us included
    rank: int  # how many live relays sort before us: where we start looking for shards


_JOIN = text("""
    INSERT INTO relay_members (relay_id, name, expires_at)
    VALUES (:id, :name, clock_timestamp() + :ttl)
    ON CONFLICT (relay_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
""")

_MEMBERS = text("""
    SELECT count(*), count(*) FILTER (WHERE relay_id < :id)
      FROM relay_members
     WHERE expires_at > clock_timestamp() AND relay_id <> :id
""")

_FORGET_GONE = text("""
    DELETE FROM relay_members WHERE expires_at < clock_timestamp() - interval '1 hour'
""")

_RENEW = text("""
    UPDATE relay_leases SET expires_at = clock_timestamp() + :ttl
     WHERE owner = :id AND expires_at > clock_timestamp()
    RETURNING shard, epoch
""")

# Free or expired leases among `shards`, in the order given, at most `limit`; rows
# another relay is taking right now are skipped, and the condition is checked again
# on the locked row, so two relays never take one shard.
_TAKE = text("""
    UPDATE relay_leases l
       SET owner = :id, epoch = l.epoch + 1, expires_at = clock_timestamp() + :ttl
      FROM (SELECT shard, owner FROM relay_leases
             WHERE shard = ANY(:shards)
               AND (owner IS NULL OR expires_at <= clock_timestamp())
             ORDER BY array_position(CAST(:shards AS integer[]), shard)
             LIMIT :limit
               FOR UPDATE SKIP LOCKED) free
     WHERE l.shard = free.shard
       AND (l.owner IS NULL OR l.expires_at <= clock_timestamp())
    RETURNING l.shard, l.epoch, free.owner AS previous
""")

_RELEASE = text("""
    UPDATE relay_leases SET owner = NULL, expires_at = '-infinity'
     WHERE owner = :id AND shard = ANY(:shards)
""")

_LEAVE = text("DELETE FROM relay_members WHERE relay_id = :id")


async def heartbeat(
    conn: AsyncConnection, relay_id: UUID, name: str, ttl: timedelta
) -> tuple[Membership, dict[int, int]]:
    """Renew our membership and every lease we still hold; return both.

    A lease missing from the answer has expired (and may belong to another relay now).
    """
    params = {"id": relay_id, "name": name[:200], "ttl": ttl}
    await conn.execute(_JOIN, params)
    others, before_us = (await conn.execute(_MEMBERS, params)).one()
    renewed = {int(row.shard): int(row.epoch) for row in await conn.execute(_RENEW, params)}
    return Membership(relays=int(others) + 1, rank=int(before_us)), renewed


async def take(
    conn: AsyncConnection, relay_id: UUID, shards: Sequence[int], limit: int, ttl: timedelta
) -> dict[int, Taken]:
    """Take up to `limit` of `shards` whose leases are free or expired."""
    if limit <= 0 or not shards:
        return {}
    result = await conn.execute(
        _TAKE, {"id": relay_id, "shards": list(shards), "limit": limit, "ttl": ttl}
    )
    return {int(row.shard): Taken(int(row.epoch), row.previous) for row in result}


async def release(conn: AsyncConnection, relay_id: UUID, shards: Sequence[int]) -> None:
    """Give leases up at once (a hand-over, or a clean stop), rather than let them expire."""
    if shards:
        await conn.execute(_RELEASE, {"id": relay_id, "shards": list(shards)})


async def leave(conn: AsyncConnection, relay_id: UUID) -> None:
    """Release every lease we hold and stop counting as a member."""
    await conn.execute(
        text("UPDATE relay_leases SET owner = NULL, expires_at = '-infinity' WHERE owner = :id"),
        {"id": relay_id},
    )
    await conn.execute(_LEAVE, {"id": relay_id})


async def forget_gone(conn: AsyncConnection) -> None:
    """Delete members that stopped renewing long ago (a relay killed with SIGKILL)."""
    await conn.execute(_FORGET_GONE)
