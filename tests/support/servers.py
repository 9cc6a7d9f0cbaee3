"""The PostgreSQL and Kafka servers a test session uses: given by the environment (on
loopback unless TEST_ALLOW_REMOTE=1), or started privately and stopped when the session
ends — as local processes (the same code `make dev` uses) or, with TEST_INFRA=containers,
as containers of compose.yaml's images through testcontainers (tests/support/infra.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
from alembic.config import Config

from alembic import command
from scripts.stack.kafka import LocalKafka, create_topics
from scripts.stack.paths import REPO, free_port, state_dir
from scripts.stack.postgres import LocalPostgres
from tests.support.containers import (
    KAFKA_IMAGE,
    POSTGRES_IMAGE,
    kafka_container,
    postgres_container,
)
from tests.support.infra import broker_hosts, chosen_infra, database_host, refuse_remote

TEMPLATE = "orders_template"
# Where this session's servers came from, for the summary pytest prints at the end.
STARTED: dict[str, str] = {}


def _guard(name: str, hosts: list[str]) -> None:
    """Stop the whole session, in one line, before touching a server not on loopback."""
    try:
        refuse_remote(name, hosts)
    except SystemExit as refused:
        pytest.exit(str(refused), returncode=2)


@dataclass
class PostgresServer:
    """A server we may create databases on. `url(name)` points at database `name`."""

    base_url: str  # any database on the server; we swap the database name
    local: LocalPostgres | None = None

    def url(self, database: str) -> str:
        prefix, _, rest = self.base_url.rpartition("/")
        query = rest.partition("?")[2]
        return f"{prefix}/{database}" + (f"?{query}" if query else "")

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url("postgres"), autocommit=True)


@contextmanager
def postgres_server(name: str) -> Iterator[PostgresServer]:
    given = os.environ.get("DATABASE_URL")
    if given:
        _guard("DATABASE_URL", [database_host(given)])
        STARTED["PostgreSQL"] = "given by DATABASE_URL"
        yield PostgresServer(given.replace("+psycopg", ""))
        return
    if chosen_infra() == "containers":
        with postgres_container() as url:
            STARTED["PostgreSQL"] = (
                f"TEST_INFRA=containers: {POSTGRES_IMAGE} at {url.split('@')[1]}"
            )
            yield PostgresServer(url)
        return
    STARTED["PostgreSQL"] = "TEST_INFRA=local: a local process"
    root = state_dir(name)
    server = LocalPostgres(
        root / "postgres", free_port(), fsync=False, settings={"max_connections": "300"}
    )
    server.start()
    try:
        yield PostgresServer(server.url(), server)
    finally:
        server.stop()
        shutil.rmtree(root / "postgres", ignore_errors=True)


def migrate(url: str, revision: str = "head") -> None:
    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, revision)


def downgrade(url: str, revision: str = "base") -> None:
    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    command.downgrade(config, revision)


def create_template(server: PostgresServer) -> str:
    """A migrated database that test databases are copied from (one migration per session)."""
    with server.admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    migrate(server.url(TEMPLATE))
    return TEMPLATE


@contextmanager
def copied_database(server: PostgresServer, name: str) -> Iterator[str]:
    with server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        yield server.url(name)
    finally:
        with server.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class KafkaServer:
    brokers: str
    local: LocalKafka | None = None

    def client_config(self) -> dict[str, str]:
        """librdkafka settings for a test's own client (producer, consumer, admin).

        Every Kafka client a test builds starts from this, so that the broker's
        security settings are written in one place.
        """
        return {"bootstrap.servers": self.brokers}

    def create_topics(self, partitions: dict[str, int]) -> None:
        from confluent_kafka.admin import AdminClient

        create_topics(AdminClient(self.client_config()), partitions)


@contextmanager
def kafka_server(name: str) -> Iterator[KafkaServer]:
    given = os.environ.get("KAFKA_BROKERS")
    if given:
        _guard("KAFKA_BROKERS", broker_hosts(given))
        STARTED["Kafka"] = "given by KAFKA_BROKERS"
        yield KafkaServer(given)
        return
    if chosen_infra() == "containers":
        with kafka_container() as bootstrap:
            STARTED["Kafka"] = f"TEST_INFRA=containers: {KAFKA_IMAGE} at {bootstrap}"
            yield KafkaServer(bootstrap)
        return
    STARTED["Kafka"] = "TEST_INFRA=local: a local process"
    root = state_dir(name, "kafka")
    shutil.rmtree(root)
    root.mkdir()
    server = LocalKafka(root, free_port(), free_port())
    server.start()
    try:
        yield KafkaServer(server.bootstrap, server)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
