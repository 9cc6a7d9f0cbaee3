"""Statements sent by psycopg itself, on a connection of SQLAlchemy's pool.

SQLAlchemy's async execution costs 100-150 µs of CPU a statement over psycopg's own (a
greenlet hop, an execution context, a result proxy; measured: `SELECT 1` 150-210 against
51-85 µs, the relay's claim 490 against 230 µs). Statements that run for every order or
every batch go through here; the rest stays with SQLAlchemy. A statement here is either
plain SQL with psycopg's `%(name)s` placeholders and values psycopg adapts itself, or a
SQLAlchemy Core statement wrapped in `Compiled`: compiled once per dialect, its values put
through the same bind processors SQLAlchemy would apply, so psycopg receives exactly what
an `AsyncConnection.execute` of it would have sent. It runs on the `AsyncConnection` a
caller holds, or on a `Checkout` (`checked_out`): a pooled connection with no SQLAlchemy
connection around it, for work made of these statements only.

Invariant: a caller sees what SQLAlchemy would have given it. A driver error comes out as
SQLAlchemy's `DBAPIError` (what `app.db.errors.translate` reads; parameters hidden), and a
connection psycopg found broken is invalidated, so the pool never hands it out again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from app.db.guard import GuardedConnection


@dataclass(frozen=True)
class _Form:
    """A statement as one dialect renders it, and how its values are made ready."""

    sql: str
    compiled: SQLCompiler
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    def parameters(self, values: Mapping[str, object]) -> MutableMapping[str, Any]:
        """Every bind's value (those fixed in the statement included), processed."""
        params = self.compiled.construct_params(values)
        for name, process in self.processors:
            params[name] = process(params[name])
        return params


class Compiled:
    """A Core statement to send through psycopg: compiled on first use for the engine's
    dialect (the JSON serializer and bind casts are the dialect's), then reused."""

    __slots__ = ("_forms", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._forms: dict[Dialect, _Form] = {}

    def form(self, dialect: Dialect) -> _Form:
        known = self._forms.get(dialect)
        if known is None:
            compiled = self.statement.compile(dialect=dialect)
            if not isinstance(compiled, SQLCompiler) or compiled.positional:
                raise TypeError("a DML or SELECT statement with named parameters is needed")
            escaped = compiled.escaped_bind_names  # the names `construct_params` gives
            processors = tuple(
                (escaped.get(name, name), process)
                for bind, name in compiled.bind_names.items()
                if (process := bind.type.dialect_impl(dialect).bind_processor(dialect))
            )
            known = self._forms[dialect] = _Form(compiled.string, compiled, processors)
        return known


class Checkout:
    """A connection of an engine's pool used through psycopg alone, for a unit of work made
    only of statements sent from here: no SQLAlchemy connection, begin, commit or
    execution options around it (they cost ~350 µs of CPU a transaction over psycopg's own:
    scratch harness, `SELECT 1` in a transaction 550-630 against 160-200 µs). `info` holds
    what `app.db.engine.after_commit` registers, as `AsyncConnection.info` does."""

    __slots__ = ("_fairy", "dialect", "driver", "info")

    def __init__(self, fairy: PoolProxiedConnection, dialect: Dialect) -> None:
        self._fairy = fairy
        self.dialect = dialect
        self.driver = _guarded(fairy)
        self.info: dict[str, Any] = {}

    async def invalidate(self, exc: BaseException) -> None:
        """Close it and keep the pool from handing it out again."""
        await greenlet_spawn(self._fairy.invalidate, exc)


Connection = AsyncConnection | Checkout  # what a statement of this module runs on


@asynccontextmanager
async def checked_out(engine: AsyncEngine, *, autocommit: bool) -> AsyncIterator[Checkout]:
    """A connection of `engine`'s pool for direct statements only: in one transaction that
    commits when the block ends (`autocommit=False`), or each statement committing on its
    own. A driver error is SQLAlchemy's `DBAPIError`, as anywhere else here; a connection
    psycopg found broken is invalidated; the connection goes back to the pool as it came
    (the pool rolls back whatever the block left open)."""
    try:
        fairy = await greenlet_spawn(engine.sync_engine.raw_connection)
    except psycopg.Error as exc:  # no connection to be had: an outage
        raise _error(None, exc, lost=True) from exc
    conn = Checkout(fairy, engine.dialect)
    driver = conn.driver
    try:
        if autocommit:
            await _run(conn, "SET autocommit", driver.set_autocommit(True))
        yield conn
        if not autocommit:
            driver.activity = "COMMIT"
            await _run(conn, "COMMIT", driver.commit())
    finally:
        try:
            if autocommit and not (driver.broken or driver.closed):
                await _run(conn, "SET autocommit", driver.set_autocommit(False))
        finally:
            await greenlet_spawn(fairy.close)


async def _run(conn: Checkout, what: str, step: Awaitable[None]) -> None:
    try:
        await step
    except psycopg.Error as exc:
        raise await _wrapped(conn, conn.driver, what, exc) from exc


async def fetch_one(
    conn: Connection, sql: str | Compiled, params: Mapping[str, object]
) -> tuple[Any, ...] | None:
    """The first row `sql` returns (None if none)."""
    driver, text, values = await _prepared(conn, sql, params)
    try:
        cursor = await driver.execute(text, values)
        row: tuple[Any, ...] | None = await cursor.fetchone()
        return row
    except psycopg.Error as exc:
        raise await _wrapped(conn, driver, text, exc) from exc


async def fetch_mapping(
    conn: Connection, sql: Compiled, params: Mapping[str, object]
) -> dict[str, Any] | None:
    """The first row `sql` returns as column name -> value (None if none)."""
    driver, text, values = await _prepared(conn, sql, params)
    try:
        cursor = await driver.execute(text, values)
        row = await cursor.fetchone()
        if row is None:
            return None
        names = [column.name for column in cursor.description or ()]
        return dict(zip(names, row, strict=True))
    except psycopg.Error as exc:
        raise await _wrapped(conn, driver, text, exc) from exc


async def execute(conn: Connection, sql: str | Compiled, params: Mapping[str, object]) -> None:
    driver, text, values = await _prepared(conn, sql, params)
    try:
        await driver.execute(text, values)
    except psycopg.Error as exc:
        raise await _wrapped(conn, driver, text, exc) from exc


async def _prepared(
    conn: Connection, sql: str | Compiled, params: Mapping[str, object]
) -> tuple[GuardedConnection[Any], str, Mapping[str, object]]:
    """The driver connection, the SQL text and the values to send it."""
    driver = conn.driver if isinstance(conn, Checkout) else await _driver(conn)
    if isinstance(sql, Compiled):
        form = sql.form(conn.dialect)
        sql, params = form.sql, form.parameters(params)
    driver.activity = sql  # named in the log line of a slow wait, as the engine's hook does
    return driver, sql, params


async def _driver(conn: AsyncConnection) -> GuardedConnection[Any]:
    sync = conn.sync_connection
    if sync is not None and not (sync.invalidated or sync.closed):
        fairy = sync.connection  # checked out and valid: no I/O to get it
    else:
        fairy = await conn.get_raw_connection()  # reconnects (I/O), as an execute would
    return _guarded(fairy)


def _guarded(fairy: PoolProxiedConnection) -> GuardedConnection[Any]:
    driver = fairy.driver_connection
    if not isinstance(driver, GuardedConnection):  # every engine of ours makes these
        raise TypeError(f"not a guarded connection: {type(driver).__name__}")
    return driver


async def _wrapped(
    conn: Connection, driver: GuardedConnection[Any], sql: str, exc: psycopg.Error
) -> BaseException:
    lost = driver.broken or driver.closed
    if lost:
        await conn.invalidate(exc)
    return _error(sql, exc, lost=lost)


def _error(sql: str | None, exc: psycopg.Error, *, lost: bool) -> BaseException:
    return DBAPIError.instance(
        sql, None, exc, psycopg.Error, hide_parameters=True, connection_invalidated=lost
    )
