"""Idempotency keys: a stored response per (principal, key), written in the transaction
that made it. Two principals' keys never meet, even when they are the same string."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.locks import IDEMPOTENCY_KEY
from app.db.tables import idempotency_keys


class StoredResponse(msgspec.Struct, frozen=True):
    request_hash: bytes
    status: int
    body: bytes


async def try_lock(conn: AsyncConnection, principal: str, key: str) -> bool:
    """Hold the key until commit; False if another request holds it right now.

    A hash collision between two principals' keys only makes one wait (409), never share.
    """
    result = await conn.execute(
        text("SELECT pg_try_advisory_xact_lock(:class, hashtext(:principal || E'\\n' || :key))"),
        {"class": IDEMPOTENCY_KEY, "principal": principal, "key": key},
    )
    return bool(result.scalar_one())


async def find(conn: AsyncConnection, principal: str, key: str) -> StoredResponse | None:
    """The response stored under `key`, unless it has expired."""
    row = (
        await conn.execute(
            text("""
                SELECT request_hash, response_status, response_body FROM idempotency_keys
                 WHERE principal = :principal AND key = :key AND expires_at > now()
            """),
            {"principal": principal, "key": key},
        )
    ).one_or_none()
    return StoredResponse(bytes(row[0]), row[1], bytes(row[2])) if row else None


async def remember(
    conn: AsyncConnection,
    principal: str,
    key: str,
    *,
    request_hash: bytes,
    order_id: UUID,
    status: int,
    body: bytes,
    ttl: timedelta,
) -> None:
    """Store the response; an expired entry under the same key is replaced."""
    values = {
        "principal": principal,
        "key": key,
        "request_hash": request_hash,
        "order_id": order_id,
        "response_status": status,
        "response_body": body,
        "created_at": text("now()"),
        "expires_at": text("now() + :ttl").bindparams(ttl=ttl),
    }
    query = insert(idempotency_keys).values(values)
    await conn.execute(
        query.on_conflict_do_update(
            index_elements=["principal", "key"],
            set_={n: query.excluded[n] for n in values if n not in ("principal", "key")},
            where=idempotency_keys.c.expires_at <= text("now()"),
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
