"""A statement sent by psycopg itself, on the connection SQLAlchemy holds.

SQLAlchemy's async execution costs 100-150 µs of CPU a statement over psycopg's own (a
greenlet hop, an execution context, a result proxy; measured: `SELECT 1` 150-210 against
51-85 µs, the relay's claim 490 against 230 µs). Statements that run for every batch go
through here; the rest stays with SQLAlchemy. A statement here is plain SQL with psycopg's
`%(name)s` placeholders and values psycopg adapts itself (no SQLAlchemy type processing).

Invariant: a caller sees what SQLAlchemy would have given it. A driver error comes out as
SQLAlchemy's `DBAPIError` (what `app.db.errors.translate` reads; parameters hidden), and a
connection psycopg found broken is invalidated, so the pool never hands it out again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.guard import GuardedConnection


async def fetch_one(
    conn: AsyncConnection, sql: str, params: Mapping[str, object]
) -> tuple[Any, ...] | None:
    """The first row `sql` returns (None if none)."""
    driver = await _driver(conn)
    driver.activity = sql  # named in the log line of a slow wait, as the engine's hook does
    try:
        cursor = await driver.execute(sql, params)
        row: tuple[Any, ...] | None = await cursor.fetchone()
        return row
    except psycopg.Error as exc:
        raise await _wrapped(conn, driver, sql, exc) from exc


async def execute(conn: AsyncConnection, sql: str, params: Mapping[str, object]) -> None:
    driver = await _driver(conn)
    driver.activity = sql
    try:
        await driver.execute(sql, params)
    except psycopg.Error as exc:
        raise await _wrapped(conn, driver, sql, exc) from exc


async def _driver(conn: AsyncConnection) -> GuardedConnection[Any]:
    sync = conn.sync_connection
    if sync is not None and not (sync.invalidated or sync.closed):
        fairy = sync.connection  # checked out and valid: no I/O to get it
    else:
        fairy = await conn.get_raw_connection()  # reconnects (I/O), as an execute would
    driver = fairy.driver_connection
    if not isinstance(driver, GuardedConnection):  # every engine of ours makes these
        raise TypeError(f"not a guarded connection: {type(driver).__name__}")
    return driver


async def _wrapped(
    conn: AsyncConnection, driver: GuardedConnection[Any], sql: str, exc: psycopg.Error
) -> BaseException:
    lost = driver.broken or driver.closed
    if lost:
        await conn.invalidate(exc)
    return DBAPIError.instance(
        sql, None, exc, psycopg.Error, hide_parameters=True, connection_invalidated=lost
    )
