"""Session-wide servers (real PostgreSQL, real Kafka) and per-test databases and topics.

Each test gets its own database, copied from a template migrated once per
session (`CREATE DATABASE … TEMPLATE`), and e2e tests get their own topics, so
tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import DatabaseSettings, sqlalchemy_url
from app.db.engine import create_engine
from scripts.stack.principals import FULFILLMENT, TopicPlan
from tests.support.pipeline import Pipeline, Topics
from tests.support.servers import (
    STARTED,
    KafkaServer,
    PostgresServer,
    api_alone,
    copied_database,
    create_template,
    kafka_server,
    postgres_server,
    running,
)

SESSION = f"test-{os.getpid()}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where PostgreSQL and Kafka came from (TEST_INFRA, tests/support/infra.py)."""
    for name, source in STARTED.items():
        terminalreporter.write_line(f"{name}: {source}")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server(SESSION) as server:
        create_template(server)
        yield server


@pytest.fixture
def database_url(postgres: PostgresServer) -> Iterator[str]:
    with copied_database(postgres, f"t_{uuid.uuid4().hex[:16]}") as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(postgres: PostgresServer) -> Iterator[str]:
    """One database for a module whose tests share a running process."""
    with copied_database(postgres, f"m_{uuid.uuid4().hex[:16]}") as url:
        yield url


@pytest.fixture(scope="module")
def api(
    module_database_url: str, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """The real API process over real HTTP, without relay and consumer.

    Events stay in the outbox: nothing publishes them.
    """
    with api_alone(postgres, module_database_url, tmp_path_factory.mktemp("api-logs")) as found:
        yield found


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    settings = DatabaseSettings(
        url=sqlalchemy_url(database_url), pool_size=5, connect_timeout=5, statement_timeout=10
    )
    engine = create_engine(settings, application_name="orders-tests")
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaServer]:
    with kafka_server(SESSION) as server:
        yield server


@pytest.fixture
def topics(kafka: KafkaServer) -> Topics:
    name = f"orders-{uuid.uuid4().hex[:10]}"
    found = Topics(orders=name, dlq=f"{name}.dlq")
    kafka.create_topics({found.orders: 6, found.dlq: 1, found.fulfillment: 6})
    # Each process's ACLs on exactly this test's topics, inbound topic included,
    # as `make dev` grants them on the real ones.
    inbound = {FULFILLMENT: (found.fulfillment,)}
    kafka.grant(TopicPlan(found.orders, found.dlq, f"group-{name}", inbound=inbound))
    return found


@pytest.fixture
def running_pipeline(
    database_url: str, postgres: PostgresServer, kafka: KafkaServer, topics: Topics, tmp_path: Path
) -> Iterator[Pipeline]:
    with running(postgres, database_url, kafka, topics, tmp_path / "logs") as found:
        yield found
