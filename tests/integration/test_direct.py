"""Statements sent by psycopg itself behave as SQLAlchemy's would, against real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import direct
from app.db.engine import transaction
from app.db.errors import translate
from app.domain.errors import Refused, Unavailable

pytestmark = pytest.mark.anyio


async def test_a_statement_runs_in_the_callers_transaction(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("CREATE TEMP TABLE seen (n int)"))
        await conn.commit()
        async with conn.begin() as begun:
            await direct.execute(conn, "INSERT INTO seen VALUES (%(n)s)", {"n": 7})
            assert await direct.fetch_one(conn, "SELECT sum(n) FROM seen", {}) == (7,)
            await begun.rollback()
        assert await direct.fetch_one(conn, "SELECT count(*) FROM seen", {}) == (0,)
        assert await direct.fetch_one(conn, "SELECT n FROM seen", {}) is None


async def test_an_error_comes_out_as_sqlalchemys_with_its_parameters_hidden(
    engine: AsyncEngine,
) -> None:
    """Hostile input: a value the statement refuses; the error must not carry the value."""
    async with transaction(engine) as conn:
        with pytest.raises(DBAPIError) as raised:
            await direct.fetch_one(conn, "SELECT 1 / %(n)s", {"n": 0, "secret": "s3cret"})
        assert isinstance(raised.value.orig, psycopg.errors.DivisionByZero)
        assert "s3cret" not in str(raised.value)
        assert isinstance(translate(raised.value), Refused)  # the statement's fault: not again


async def test_a_connection_killed_under_a_statement_is_invalidated(
    engine: AsyncEngine, database_url: str
) -> None:
    async with engine.connect() as conn:
        [pid] = await direct.fetch_one(conn, "SELECT pg_backend_pid()", {}) or (None,)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(DBAPIError) as raised:
            await direct.fetch_one(conn, "SELECT 1", {})
        assert raised.value.connection_invalidated
        assert isinstance(translate(raised.value), Unavailable)  # waited out, not dead-lettered
        assert conn.invalidated  # the pool will not hand it out again
    async with engine.connect() as conn:  # a new one comes up
        assert await direct.fetch_one(conn, "SELECT 1", {}) == (1,)
