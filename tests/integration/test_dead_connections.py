"""Half-open PostgreSQL connections are noticed within DB_GIVE_UP_AFTER and replaced.

A TCP proxy of the test's own (tests/support/proxy.py) sits between the client and the
real server and goes silent on demand; the kernel still acknowledges every byte, so
only the client's own deadlines can tell.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import DatabaseSettings, sqlalchemy_url
from app.db.engine import create_engine, transaction
from app.db.wakeup import CHANNEL, Wakeup
from app.domain.errors import Unavailable
from tests.support.proxy import TcpProxy, target_of, tcp_proxy, url_through

pytestmark = pytest.mark.anyio
GIVE_UP = 2.0


def settings(url: str) -> DatabaseSettings:
    return DatabaseSettings(
        url=sqlalchemy_url(url),
        pool_size=3,
        connect_timeout=1,
        statement_timeout=1.5,
        lock_timeout=1,
        slow_wait=0.5,
        give_up_after=GIVE_UP,
    )


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    with tcp_proxy(*target_of(database_url)) as running:
        yield running


@pytest.fixture
async def proxied(proxy: TcpProxy, database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings(url_through(proxy, database_url)), application_name="test-held")
    yield engine
    await engine.dispose()


async def select_one(engine: AsyncEngine) -> int:
    async with transaction(engine) as conn:
        return int((await conn.execute(text("SELECT 1"))).scalar_one())


def abandoned() -> float:
    value = REGISTRY.get_sample_value(
        "orders_db_connections_abandoned_total", {"application": "test-held"}
    )
    return value or 0.0


async def test_a_held_connection_is_abandoned_in_bounded_time_and_replaced(
    proxied: AsyncEngine, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    assert await select_one(proxied) == 1
    before = abandoned()
    assert proxy.hold_existing() >= 1
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "app.db"), pytest.raises(Unavailable):
        await select_one(proxied)
    noticed = time.monotonic() - started
    assert GIVE_UP - 0.1 <= noticed < GIVE_UP + 1.0
    assert abandoned() == before + 1
    messages = {record.getMessage(): record for record in caplog.records}
    assert "database wait running long" in messages
    slow = messages["database connection abandoned: no answer"]
    assert "SELECT 1" in slow.__dict__["waiting_on"]
    # The pool drops what it held as old; the next transaction gets a new connection.
    started = time.monotonic()
    assert await select_one(proxied) == 1
    assert time.monotonic() - started < 1.0


async def test_with_everything_held_a_transaction_fails_fast_then_recovers(
    proxied: AsyncEngine, proxy: TcpProxy
) -> None:
    assert await select_one(proxied) == 1
    proxy.hold_all()
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await select_one(proxied)
    assert time.monotonic() - started < GIVE_UP + 2.0  # connect_timeout or the deadline
    proxy.release()
    assert await select_one(proxied) == 1


async def test_the_server_ends_a_transaction_whose_client_went_silent(
    proxied: AsyncEngine, proxy: TcpProxy, database_url: str
) -> None:
    """Its locks would otherwise block every writer of the same rows for ever."""
    async with proxied.connect() as conn:
        await conn.execute(text("BEGIN"))
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await conn.execute(text("SELECT pg_advisory_xact_lock(42)"))
        proxy.hold_existing()
        started = time.monotonic()
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            while True:
                cursor = await admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
                )
                if (await cursor.fetchone()) == (0,):
                    break
                assert time.monotonic() - started < GIVE_UP + 2.0, "the session is still there"
                await asyncio.sleep(0.1)
            cursor = await admin.execute("SELECT pg_try_advisory_lock(42)")
            assert await cursor.fetchone() == (True,)
        await conn.invalidate()


async def test_the_listener_notices_a_held_connection_and_listens_again(
    proxy: TcpProxy, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    wakeup = Wakeup(settings(url_through(proxy, database_url)), "test", check_every=0.3)
    try:
        assert await wakeup.wait(5, after=-math.inf)  # the first LISTEN rings once
        looked = time.monotonic()
        proxy.hold_existing()
        with caplog.at_level(logging.WARNING):
            started = time.monotonic()
            while "LISTEN connection lost" not in caplog.text:
                assert time.monotonic() - started < GIVE_UP + 2.0
                await asyncio.sleep(0.05)
        # Listening again on a new connection: rings once more.
        assert await wakeup.wait(5, after=looked)
        looked = time.monotonic()
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(f"NOTIFY {CHANNEL}")
        assert await wakeup.wait(5, after=looked)
    finally:
        await wakeup.close()
