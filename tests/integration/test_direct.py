"""Statements sent by psycopg itself behave as SQLAlchemy's would, against real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import psycopg
import pytest
from sqlalchemy import Integer, Numeric, Text, Uuid, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import direct
from app.db.engine import after_commit, direct_transaction, statement, transaction
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


async def test_a_compiled_core_statement_returns_what_sqlalchemy_would(engine: AsyncEngine) -> None:
    """Bind processors (JSONB), bind casts (UUID, numeric arrays) and values fixed in the
    statement (`n + 1`) reach psycopg as SQLAlchemy sends them."""
    document = bindparam("doc", type_=JSONB)
    ids = bindparam("ids", type_=ARRAY(Numeric))
    statement = select(
        (bindparam("n", type_=Integer) + 1).label("next"),
        document["k"].astext.label("k"),
        func.cardinality(ids).label("many"),
        bindparam("who", type_=Uuid).label("who"),
    )
    compiled = direct.Compiled(statement)
    who = uuid4()
    values = {"n": 41, "doc": {"k": "v", "price": Decimal("9.99")}, "ids": [Decimal(1)], "who": who}
    async with transaction(engine) as conn:
        expected = dict((await conn.execute(statement, values)).one()._mapping)
        assert await direct.fetch_mapping(conn, compiled, values) == expected
        assert expected == {"next": 42, "k": "v", "many": 1, "who": who}
        assert await direct.fetch_one(conn, compiled, values) == (42, "v", 1, who)
        # Compiled once for the dialect, then reused.
        assert compiled.form(conn.dialect) is compiled.form(conn.dialect)


async def test_a_compiled_statements_values_are_bound_never_spliced(engine: AsyncEngine) -> None:
    """Hostile input: SQL in a value stays a value."""
    compiled = direct.Compiled(select(bindparam("s", type_=Text).label("s")))
    hostile = "x'); DROP TABLE orders; --"
    async with transaction(engine) as conn:
        assert await direct.fetch_mapping(conn, compiled, {"s": hostile}) == {"s": hostile}
        assert await direct.fetch_one(conn, "SELECT to_regclass('orders') IS NOT NULL", {}) == (
            True,
        )


async def test_a_direct_transaction_commits_at_its_end_and_runs_what_waited_for_it(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("CREATE TABLE seen (n int)"))
        await conn.commit()
    ran: list[str] = []
    async with direct_transaction(engine) as checkout:
        await direct.execute(checkout, "INSERT INTO seen VALUES (1)", {})
        after_commit(checkout, lambda: ran.append("committed"))
        assert ran == []  # not before the commit
    assert ran == ["committed"]
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with direct_transaction(engine) as checkout:
            await direct.execute(checkout, "INSERT INTO seen VALUES (2)", {})
            after_commit(checkout, lambda: ran.append("never"))
            raise RuntimeError("changed my mind")
    assert ran == ["committed"]
    async with engine.connect() as conn:  # the second insert was rolled back
        assert (await conn.execute(text("SELECT array_agg(n) FROM seen"))).scalar_one() == [1]


async def test_a_statement_commits_alone_and_gives_its_connection_back_transactional(
    engine: AsyncEngine,
) -> None:
    """Autocommit is for the one statement: the pool's next user gets a connection whose
    statements wait for their commit again."""
    async with engine.connect() as conn:
        await conn.execute(text("CREATE TABLE seen (n int)"))
        await conn.commit()
    for _ in range(6):  # more than the pool holds: every connection has been through it
        async with statement(engine) as checkout:
            await direct.execute(checkout, "INSERT INTO seen VALUES (1)", {})
    for _ in range(6):
        with pytest.raises(RuntimeError):
            async with direct_transaction(engine) as checkout:
                assert not checkout.driver.autocommit
                await direct.execute(checkout, "INSERT INTO seen VALUES (2)", {})
                raise RuntimeError("roll back")
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM seen"))).scalar_one() == 6


async def test_a_constraint_checked_at_commit_is_translated(engine: AsyncEngine) -> None:
    """Hostile input: a row the deferred check refuses only at COMMIT still comes out as
    the domain's error, and nothing of it stays."""
    async with engine.connect() as conn:
        await conn.execute(text("CREATE TABLE pairs (n int UNIQUE DEFERRABLE INITIALLY DEFERRED)"))
        await conn.commit()
    with pytest.raises(Refused):
        async with direct_transaction(engine) as checkout:
            await direct.execute(checkout, "INSERT INTO pairs VALUES (1), (1)", {})
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM pairs"))).scalar_one() == 0


async def test_a_checked_out_connection_killed_under_a_statement_is_an_outage(
    engine: AsyncEngine, database_url: str
) -> None:
    with pytest.raises(Unavailable):
        async with direct_transaction(engine) as checkout:
            [pid] = await direct.fetch_one(checkout, "SELECT pg_backend_pid()", {}) or (None,)
            async with await psycopg.AsyncConnection.connect(
                database_url, autocommit=True
            ) as admin:
                await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            await direct.fetch_one(checkout, "SELECT 1", {})
    async with direct_transaction(engine) as checkout:  # the pool hands out a live one
        assert await direct.fetch_one(checkout, "SELECT 1", {}) == (1,)
