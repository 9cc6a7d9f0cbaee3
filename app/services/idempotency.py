"""Idempotency-Key semantics (IETF draft, as Stripe implements them) around a use case.

The key is locked for the duration of the transaction (a second request with
it meanwhile is told 409), the stored response is replayed when the request is
the same, refused (422) when it differs, and otherwise the use case runs and
its response is stored in the same transaction: a key is remembered if and
only if its order exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db import idempotency
from app.db.engine import transaction
from app.domain.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, Unavailable
from app.domain.order import NewOrder, Order

log = logging.getLogger("app.idempotency")


class Response(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    replayed: bool


def fingerprint(request: NewOrder) -> bytes:
    """Equal for equal requests, however the JSON was spaced or its keys ordered."""
    return hashlib.sha256(msgspec.json.encode(request, order="sorted")).digest()


async def once(
    conn: AsyncConnection,
    principal: str,
    key: str,
    request: NewOrder,
    *,
    ttl: timedelta,
    create: Callable[[AsyncConnection], Awaitable[Order]],
    render: Callable[[Order], bytes],
) -> Response:
    """Run `create` once per (principal, key): a key is the caller's own, never shared."""
    if not await idempotency.try_lock(conn, principal, key):
        raise IdempotencyKeyInFlight(key, "a request with this Idempotency-Key is in progress")
    request_hash = fingerprint(request)
    stored = await idempotency.find(conn, principal, key)
    if stored is not None:
        if stored.request_hash != request_hash:
            raise IdempotencyKeyReused(
                key, "this Idempotency-Key was used with a different request"
            )
        return Response(stored.status, stored.body, replayed=True)
    order = await create(conn)
    body = render(order)
    await idempotency.remember(
        conn,
        principal,
        key,
        request_hash=request_hash,
        order_id=order.id,
        status=201,
        body=body,
        ttl=ttl,
    )
    return Response(201, body, replayed=False)


async def prune_expired_keys(engine: AsyncEngine, *, every: float, batch: int = 1000) -> None:
    """Delete expired keys now and then, a batch at a time, for as long as the API runs."""
    while True:
        try:
            async with transaction(engine) as conn:
                pruned = await idempotency.prune_expired(conn, batch)
            if pruned:
                log.info("pruned expired idempotency keys", extra={"keys": pruned})
            if pruned == batch:
                continue
        except Unavailable as exc:
            log.warning("could not prune idempotency keys", extra={"error": str(exc)})
        await asyncio.sleep(every)
