"""Run a use case once per (principal, key) and store its outcome (IETF Idempotency-Key
draft semantics, as Stripe implements them); nothing here knows HTTP.

The key is locked for the duration of the caller's transaction (a second request with
it meanwhile gets IdempotencyKeyInFlight); the stored outcome is returned again when
the request is the same, refused (IdempotencyKeyReused) when it differs, and otherwise
the use case runs and its outcome is stored in the same transaction: a key is
remembered if and only if what it created exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Generic, Protocol, TypeVar
from uuid import UUID

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db import idempotency
from app.db.engine import transaction
from app.domain.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, Unavailable
from app.events.codec import encode

log = logging.getLogger("app.idempotency")


class Created(Protocol):
    """An outcome names what it created (idempotency keys refer to it)."""

    @property
    def id(self) -> UUID: ...


T = TypeVar("T", bound=Created)


class Once(msgspec.Struct, Generic[T], frozen=True):
    outcome: T
    replayed: bool  # True: the stored outcome of an earlier run, nothing ran now


def fingerprint(request: object) -> bytes:
    """Equal for equal requests, however the JSON was spaced or its keys ordered."""
    return hashlib.sha256(msgspec.json.encode(request, order="sorted")).digest()


async def once(
    conn: AsyncConnection,
    principal: str,
    key: str,
    request: object,
    *,
    ttl: timedelta,
    run: Callable[[AsyncConnection], Awaitable[T]],
    outcome: type[T],
) -> Once[T]:
    """`run` once per (principal, key): a key is the caller's own, never shared."""
    if not await idempotency.try_lock(conn, principal, key):
        raise IdempotencyKeyInFlight(key, "a request with this Idempotency-Key is in progress")
    request_hash = fingerprint(request)
    stored = await idempotency.find(conn, principal, key)
    if stored is not None:
        if stored.request_hash != request_hash:
            raise IdempotencyKeyReused(
                key, "this Idempotency-Key was used with a different request"
            )
        return Once(msgspec.json.decode(stored.outcome, type=outcome), replayed=True)
    result = await run(conn)
    stored_outcome = encode(result)
    await idempotency.remember(
        conn,
        principal,
        key,
        request_hash=request_hash,
        created=result.id,
        outcome=stored_outcome,
        ttl=ttl,
    )
    # What a replay will return, so that first answer and replays are the same byte for
    # byte (a JSON number such as 1.50 in metadata comes back from the store as 1.5).
    return Once(msgspec.json.decode(stored_outcome, type=outcome), replayed=False)


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
