"""The outbox: events written with the change that caused them, published by the relay.

Rows are numbered per key in commit order by a trigger (migration 0001); the
relay claims the oldest unpublished rows of the shards it owns, publishes them,
and marks them published only after Kafka has acknowledged them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import JSON, Text, bindparam, cast, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Insert

from app.db import direct
from app.db.tables import outbox
from app.events.message import OutboxMessage


class ClaimedMessage(msgspec.Struct, frozen=True):
    """An outbox row the relay has claimed: the message, and what the row adds to it."""

    message: OutboxMessage
    seq: int  # the key's position in commit order
    created_at: datetime
    attempts: int  # failed publish attempts so far
    shard: int  # the outbox shard: which lease it goes out under


def insert_message(prefix: str) -> Insert:
    """An INSERT of one message, its values bound as `{prefix}{field}` (`bound`): the
    columns are named after the fields; `payload` goes in as the JSON text it is."""
    values: dict[str, Any] = {
        name: bindparam(f"{prefix}{name}", type_=outbox.c[name].type)
        for name in OutboxMessage.__struct_fields__
    }
    values["payload"] = cast(bindparam(f"{prefix}payload", type_=Text), JSON)
    return outbox.insert().values(values)


def bound(message: OutboxMessage, prefix: str) -> dict[str, object]:
    """The values of `insert_message(prefix)` for `message`."""
    row = {**msgspec.structs.asdict(message), "payload": message.payload.decode()}
    return {f"{prefix}{name}": value for name, value in row.items()}


# One statement: the oldest claimable rows, locked (skipping rows another session
# holds). Rows behind a parked row of the same key wait with it, so a key's order
# survives a poison event. Claiming writes nothing: the relay's shard lease makes
# the rows its own, and a row costs one UPDATE in all (its mark), not two; failed
# attempts are counted by record_failure.
# Beside a batch in flight, its rows are left out (`in_flight`: their ids) and the claim
# takes what follows, later rows of the same keys included: the relay sends those only
# once the batch in flight has gone out whole (relay/loop.py). By id, through a hashed
# subplan (`NOT IN`), not `<> ALL` of an array, which a prepared (generic) plan checks
# element by element for every row; the rows in flight are the oldest, so a claim
# beside them reads at most one batch more than it claims.
# The batch comes back as one JSON array, decoded in one call: per-row decoding in
# Python (a UUID, a timestamp, a JSON document of headers for each of thousands of
# rows) was most of the relay's CPU. `payload` is a `json` column, so it is embedded
# byte for byte and taken out again as raw bytes, never parsed. Its ids come back too,
# as one array literal, which the next claim and the mark take as they are. Sent
# through psycopg itself (`app.db.direct`): a claim and a mark run for every batch. The
# shards go as one array literal: psycopg's list dumping cost ~80 µs a claim.
_CLAIM = """
    WITH claimed AS (
        SELECT o.id, o.topic, o.key, o.event_type, o.subject, o.payload, o.headers, o.seq,
               o.created_at, o.attempts, o.shard
          FROM outbox o
         WHERE o.published_at IS NULL
           AND o.parked_at IS NULL
           AND o.shard = ANY(CAST(%(shards)s AS smallint[]))
           AND (CAST(%(owner)s AS uuid) IS NULL OR o.shard IN (
               SELECT l.shard FROM relay_leases l
                WHERE l.owner = CAST(%(owner)s AS uuid) AND l.expires_at > clock_timestamp()))
           AND o.id NOT IN (SELECT unnest(CAST(%(in_flight)s AS uuid[])))
           AND NOT EXISTS (
               SELECT 1 FROM outbox p
                WHERE p.parked_at IS NOT NULL AND p.published_at IS NULL
                  AND p.key = o.key AND p.seq < o.seq)
         ORDER BY o.seq
         LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED)
    SELECT coalesce(json_agg(claimed ORDER BY seq), '[]')::text,
           coalesce(array_agg(id ORDER BY seq), '{}')::text
      FROM claimed
"""
NOTHING = "{}"  # no rows: the ids of an empty claim, or of nothing in flight


class _ClaimedRow(msgspec.Struct, frozen=True):
    """A claimed row as the claim's JSON carries it; `payload` is the value's raw bytes."""

    id: UUID
    topic: str
    key: str
    event_type: str
    subject: str
    payload: msgspec.Raw
    headers: dict[str, str]
    seq: int
    created_at: datetime
    attempts: int
    shard: int


_CLAIMED = msgspec.json.Decoder(list[_ClaimedRow])


class Claim(msgspec.Struct, frozen=True):
    """Claimed messages, oldest first; whether claimable rows may be left (the claim
    stopped at its limit); and their ids as one uuid[] literal."""

    messages: list[ClaimedMessage]
    more: bool
    ids: str = NOTHING


async def claim_batch(
    conn: AsyncConnection,
    shards: Sequence[int],
    limit: int,
    *,
    owner: UUID | None = None,
) -> list[ClaimedMessage]:
    """The oldest unpublished messages of `shards`, in commit order per key; with `owner`,
    only of shards whose lease `owner` still holds (a relay whose lease ran out claims
    nothing, even before it notices)."""
    return (await claim(conn, shards, limit, owner=owner)).messages


async def claim(
    conn: AsyncConnection,
    shards: Sequence[int],
    limit: int,
    in_flight: str = NOTHING,
    *,
    owner: UUID | None = None,
) -> Claim:
    """As `claim_batch`, leaving out the rows `in_flight` (a uuid[] literal, as `Claim.ids`
    and `ids_literal` give it) and taking what follows them, later rows of their keys too."""
    params = {"shards": _int_array(shards), "limit": limit, "owner": owner, "in_flight": in_flight}
    found = await direct.fetch_one(conn, _CLAIM, params)
    if found is None:
        raise RuntimeError("the claim returned no row")  # an aggregate: it always does one
    rows, ids = found
    messages = [_claimed(row) for row in _CLAIMED.decode(rows)]
    return Claim(messages, len(messages) >= limit, ids)


def ids_literal(ids: Iterable[UUID]) -> str:
    """`ids` as one uuid[] literal: psycopg dumps a list of UUIDs at ~9 µs an element."""
    return "{" + ",".join(map(str, ids)) + "}"


def _claimed(row: _ClaimedRow) -> ClaimedMessage:
    message = OutboxMessage(
        row.id, row.topic, row.key, row.event_type, row.subject, bytes(row.payload), row.headers
    )
    return ClaimedMessage(message, row.seq, row.created_at, row.attempts, row.shard)


_MARK = """
    UPDATE outbox SET published_at = statement_timestamp(), last_error = NULL
     WHERE id = ANY(CAST(%(ids)s AS uuid[]))
"""


async def mark_published(conn: AsyncConnection, ids: Sequence[UUID] | str) -> None:
    """Mark `ids` published: UUIDs, or one array literal as `Claim.ids` gives it."""
    literal = ids if isinstance(ids, str) else ids_literal(ids)
    if literal != NOTHING:
        # One timestamp for the whole mark (the statement's), so a batch is the set of rows
        # marked at one instant (the bench counts batches by it).
        await direct.execute(conn, _MARK, {"ids": literal})


def _int_array(values: Sequence[int]) -> str:
    return "{" + ",".join(str(int(value)) for value in values) + "}"


async def record_failure(
    conn: AsyncConnection, message_id: UUID, error: str, *, park: bool
) -> None:
    """Remember why a publish failed; a parked row (and its key) waits for an operator."""
    await conn.execute(
        text("""
            UPDATE outbox
               SET attempts = attempts + 1,
                   last_attempt_at = clock_timestamp(),
                   last_error = :error,
                   parked_at = CASE WHEN :park THEN clock_timestamp() END
             WHERE id = :id
        """),
        {"id": message_id, "error": error[:2000], "park": park},
    )


async def prune_published(conn: AsyncConnection, retention: timedelta, batch: int) -> int:
    """Delete up to `batch` rows published longer than `retention` ago."""
    result = await conn.execute(
        text("SELECT outbox_prune(:retention, :batch)"), {"retention": retention, "batch": batch}
    )
    return int(result.scalar_one())


async def backlog(conn: AsyncConnection) -> tuple[int, float]:
    """(unpublished rows, parked included; age in seconds of the oldest)."""
    row = (
        await conn.execute(
            text("SELECT unpublished + parked, extract(epoch FROM oldest_age) FROM outbox_backlog")
        )
    ).one()
    return int(row[0]), float(row[1])
