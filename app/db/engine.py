"""Engine and transactions. Driver errors become domain errors here, once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.config import DatabaseSettings
from app.db import direct, guard
from app.db.errors import translate
from app.domain.errors import Unavailable

_json_decoder = msgspec.json.Decoder(float_hook=Decimal)
_AFTER_COMMIT = "orders.after_commit"
C = TypeVar("C", AsyncConnection, direct.Checkout)


def _encode_json(value: object) -> str:
    return msgspec.json.encode(value, enc_hook=str).decode()


def deadlines(settings: DatabaseSettings, application_name: str) -> guard.Deadlines:
    return guard.Deadlines(application_name, settings.slow_wait, settings.give_up_after)


def connection_parameters(settings: DatabaseSettings, application_name: str) -> dict[str, Any]:
    """libpq parameters for every connection our processes open (see app.db.guard)."""
    return guard.libpq_parameters(
        deadlines(settings, application_name),
        connect_timeout=settings.connect_timeout,
        statement_timeout=settings.statement_timeout,
        lock_timeout=settings.lock_timeout,
    )


async def connect(
    settings: DatabaseSettings, application_name: str, **parameters: Any
) -> guard.GuardedConnection[Any]:
    """A plain psycopg connection (LISTEN, NOTIFY) with the same deadlines as the pool's."""
    return await guard.connect(
        deadlines(settings, application_name),
        libpq_url(settings.url),
        **connection_parameters(settings, application_name),
        **parameters,
    )


def create_engine(settings: DatabaseSettings, *, application_name: str) -> AsyncEngine:
    limits = deadlines(settings, application_name)

    async def create(**kwargs: Any) -> guard.GuardedConnection[Any]:
        return await guard.connect(limits, **kwargs)

    engine = create_async_engine(
        settings.url,
        pool_size=settings.pool_size,
        max_overflow=0,
        pool_timeout=settings.connect_timeout,
        pool_recycle=3600,
        connect_args={
            "async_creator_fn": create,
            # A statement stuck longer (a lock held elsewhere, an overloaded server) is
            # cancelled and surfaces as Unavailable (503 for the API), not as a hang.
            **connection_parameters(settings, application_name),
        },
        json_serializer=_encode_json,
        json_deserializer=_json_decoder.decode,
        # A failed statement's error names it, never its values: customer data (emails,
        # addresses) must not reach the logs through an exception's text.
        hide_parameters=True,
    )
    _name_activities(engine)
    return engine


def _name_activities(engine: AsyncEngine) -> None:
    """Keep each connection's `activity` current, for the log line of a slow wait."""

    def activity(conn: Connection, label: str) -> None:
        if conn.invalidated or conn.closed:  # nothing left to wait on
            return
        driver = conn.connection.driver_connection
        if isinstance(driver, guard.GuardedConnection):
            driver.activity = label

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def statement(conn: Connection, _c: object, sql: str, *_: object) -> None:
        activity(conn, sql)

    @event.listens_for(engine.sync_engine, "commit")
    def commit(conn: Connection) -> None:
        activity(conn, "COMMIT")

    @event.listens_for(engine.sync_engine, "rollback")
    def rollback(conn: Connection) -> None:
        activity(conn, "ROLLBACK")


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction; commits on success, then runs what `after_commit` registered.

    Deferred constraints fire at the commit, so the commit is inside the translation too.
    """
    async with _committing(engine.begin()) as conn:
        yield conn


@asynccontextmanager
async def direct_transaction(engine: AsyncEngine) -> AsyncIterator[direct.Checkout]:
    """`transaction()` for work made only of `app.db.direct` statements (the consumer's):
    on a pooled connection used through psycopg alone, without SQLAlchemy's per-transaction
    cost."""
    async with _committing(direct.checked_out(engine, autocommit=False)) as conn:
        yield conn


@asynccontextmanager
async def statement(engine: AsyncEngine) -> AsyncIterator[direct.Checkout]:
    """`direct_transaction()` for a write that is ONE statement: it commits on its own
    (autocommit), so BEGIN and COMMIT are not two more round trips. Deferred constraints
    fire at that implicit commit, inside the statement's execution. A second statement
    would be a second transaction: use a transaction for more than one."""
    async with _committing(direct.checked_out(engine, autocommit=True)) as conn:
        yield conn


@asynccontextmanager
async def _committing(
    opening: AbstractAsyncContextManager[C],
) -> AsyncIterator[C]:
    """The connection `opening` gives, with database errors translated, and what
    `after_commit` registered run once it has committed."""
    callbacks: list[Callable[[], None]] = []
    try:
        async with opening as conn:
            # Replaced by the next transaction on this connection; not cleared here, as
            # an invalidated connection (database gone) refuses even that.
            conn.info[_AFTER_COMMIT] = callbacks
            yield conn
    except DBAPIError as exc:
        raise translate(exc) from exc
    except (PoolTimeout, OSError) as exc:  # no connection to be had in time, or none at all
        raise Unavailable("the database is unavailable") from exc
    for callback in callbacks:
        callback()


def after_commit(conn: direct.Connection, callback: Callable[[], None]) -> None:
    """Run `callback` once the `transaction()`, `direct_transaction()` or `statement()` on
    `conn` has committed (not if it rolls back)."""
    callbacks: list[Callable[[], None]] = conn.info[_AFTER_COMMIT]
    if callback not in callbacks:
        callbacks.append(callback)


def libpq_url(url: str) -> str:
    """The settings' SQLAlchemy URL as plain libpq understands it (for LISTEN, pgbench…)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
