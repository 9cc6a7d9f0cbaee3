"""Idempotency keys: a stored outcome per (principal, key), written in the transaction
that made it. Two principals' keys never meet, even when they are the same string.

The columns `response_status`/`response_body` are named for what the table held first
(an HTTP response); they hold a use case's encoded outcome now, marked by status
OUTCOME, and rows of the older kind (status 201) are not read as outcomes."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.locks import IDEMPOTENCY_KEY
from app.db.tables import idempotency_keys

OUTCOME = 0


class Stored(msgspec.Struct, frozen=True):
    request_hash: bytes
    outcome: bytes


async def try_lock(conn: AsyncConnection, principal: str, key: str) -> bool:
    """Hold the key until commit; False if another request holds it right now.

    A hash collision between two principals' keys only makes one wait (409), never share.
    """
    result = await conn.execute(
        text("SELECT pg_try_advisory_xact_lock(:class, hashtext(:principal || E'\\n' || :key))"),
        {"class": IDEMPOTENCY_KEY, "principal": principal, "key": key},
    )
    return bool(result.scalar_one())


async def find(conn: AsyncConnection, principal: str, key: str) -> Stored | None:
    """The outcome stored under `key`, unless it has expired."""
    row = (
        await conn.execute(
            text("""
                SELECT request_hash, response_body FROM idempotency_keys
                 WHERE principal = :principal AND key = :key AND expires_at > now()
                   AND response_status = :outcome
            """),
            {"principal": principal, "key": key, "outcome": OUTCOME},
        )
    ).one_or_none()
    return Stored(bytes(row[0]), bytes(row[1])) if row else None


async def remember(
    conn: AsyncConnection,
    principal: str,
    key: str,
    *,
    request_hash: bytes,
    created: UUID,
    outcome: bytes,
    ttl: timedelta,
) -> None:
    """Store the outcome (`created`: the order it made), replacing an expired entry or one
    of the older kind."""
    values = {
        "principal": principal,
        "key": key,
        "request_hash": request_hash,
        "order_id": created,
        "response_status": OUTCOME,
        "response_body": outcome,
        "created_at": text("now()"),
        "expires_at": text("now() + :ttl").bindparams(ttl=ttl),
    }
    query = insert(idempotency_keys).values(values)
    await conn.execute(
        query.on_conflict_do_update(
            index_elements=["principal", "key"],
            set_={n: query.excluded[n] for n in values if n not in ("principal", "key")},
            where=(idempotency_keys.c.expires_at <= text("now()"))
            | (idempotency_keys.c.response_status != OUTCOME),
        )
    )


async def prune_expired(conn: AsyncConnection, batch: int) -> int:
    result = await conn.execute(
        text("""
            DELETE FROM idempotency_keys WHERE (principal, key) IN (
                SELECT principal, key FROM idempotency_keys WHERE expires_at <= now()
                 ORDER BY expires_at LIMIT :batch FOR UPDATE SKIP LOCKED)
        """),
        {"batch": batch},
    )
    return int(result.rowcount or 0)
