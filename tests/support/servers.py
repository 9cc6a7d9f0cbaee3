"""The PostgreSQL and Kafka servers a test session uses: given by the environment (on
loopback unless TEST_ALLOW_REMOTE=1), or started privately and stopped when the session
ends — as local processes (the same code `make dev` uses) or, with TEST_INFRA=containers,
as containers of compose.yaml's images through testcontainers (tests/support/infra.py).

Started as local processes, both run as `make dev`'s do: PostgreSQL with passwords and
one login per process, Kafka with SASL and ACLs. Each process of a test then runs as
its own database user and Kafka principal (`identities`); the tests themselves act as
the admin.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from alembic.config import Config

from alembic import command
from app import config
from scripts.stack import logins, principals
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
from tests.support.pipeline import Pipeline, Topics, pipeline

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
    # process -> its login's password (made once per session, after the first migration)
    passwords: dict[str, str] = field(
        default_factory=lambda: {name: secrets.token_hex(16) for name in logins.ROLES}
    )

    def url(self, database: str) -> str:
        prefix, _, rest = self.base_url.rpartition("/")
        query = rest.partition("?")[2]
        return f"{prefix}/{database}" + (f"?{query}" if query else "")

    def create_logins(self) -> None:
        logins.create_logins(self.url("postgres"), self.passwords)

    def process_url(self, database_url: str, process: str) -> str:
        """`database_url` as `process`'s own user (a member of its role) sees it."""
        return logins.login_url(database_url, process, self.passwords[process])

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
    server.create_logins()  # the roles they join exist from now on
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

    def client_config(self, principal: str = principals.ADMIN) -> dict[str, str]:
        """librdkafka settings for a test's own client (producer, consumer, admin),
        acting as `principal` (a given server: as the environment's KAFKA_* say).

        Every Kafka client a test builds starts from this, so that the broker's
        security settings are written in one place.
        """
        if self.local is None:
            return config.kafka_client_config(config.load(env_file=None).kafka)
        return self.local.client_config(principal)

    def process_env(self, principal: str) -> dict[str, str]:
        """What makes one of our processes connect as `principal` (a given server:
        nothing, the processes inherit the environment's KAFKA_* settings)."""
        return {} if self.local is None else self.local.process_env(principal)

    def create_topics(self, partitions: dict[str, int]) -> None:
        from confluent_kafka.admin import AdminClient

        create_topics(AdminClient(self.client_config()), partitions)

    def grant(self, plan: principals.TopicPlan) -> None:
        """Each principal's ACLs on a test's topics (a given server: its operator's job)."""
        if self.local is not None:
            self.local.grant(plan)


def identities(
    postgres: PostgresServer, database_url: str, kafka: KafkaServer | None
) -> dict[str, dict[str, str]]:
    """Each process's own environment: its database user and, if it talks to Kafka,
    its principal; under "admin", what an operator's tools run with (DLQ replay)."""
    found: dict[str, dict[str, str]] = {"admin": {}}
    if kafka is not None:
        found["admin"] = kafka.process_env(principals.ADMIN)
    for process in logins.ROLES:
        found[process] = {"DATABASE_URL": postgres.process_url(database_url, process)}
        principal = principals.PROCESS_PRINCIPALS.get(process)
        if kafka is not None and principal is not None:
            found[process].update(kafka.process_env(principal))
    return found


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


@contextmanager
def running(
    postgres: PostgresServer,
    database_url: str,
    kafka: KafkaServer,
    topics: Topics,
    log_dir: Path,
    *,
    start: tuple[str, ...] = ("api", "relay", "consumer"),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Pipeline]:
    """Our processes on `database_url` and `kafka`, each as its own identity."""
    with pipeline(
        database_url,
        kafka.brokers,
        topics,
        log_dir,
        identities=identities(postgres, database_url, kafka),
        start=start,
        extra_env=extra_env,
    ) as found:
        yield found


@contextmanager
def api_alone(
    postgres: PostgresServer,
    database_url: str,
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Pipeline]:
    """The real API process only, as its own database user: nothing publishes its events
    (the topics are named in outbox rows only, and no broker answers)."""
    topics = Topics(orders="orders", dlq="orders.dlq")
    with pipeline(
        database_url,
        "127.0.0.1:9",
        topics,
        log_dir,
        identities=identities(postgres, database_url, None),
        start=("api",),
        extra_env=extra_env,
    ) as found:
        yield found
