"""PostgreSQL and Kafka for a test session from testcontainers-python (TEST_INFRA=containers).

The images are the ones compose.yaml names (postgres:17, apache/kafka:4.2.0): real ones
where present or pullable, else the stand-ins of tests/containers/standins/. The engine
is the one that answers, else a private dockerd, shared by both servers of a session and
stopped when the last of them is done. Ryuk (testcontainers' reaper, an image of its own)
is off: each container is stopped and removed by the context manager that started it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from confluent_kafka.admin import AdminClient

from scripts.stack.paths import free_port
from scripts.stack.waiting import wait_for
from tests.containers.engine import Engine, docker_engine

POSTGRES_IMAGE = "postgres:17"
KAFKA_IMAGE = "apache/kafka:4.2.0"
CLUSTER_ID = "8bY9fSpYTJCyXyOq_Yo6YQ"  # compose.yaml's

_users = 0
_stack: contextlib.ExitStack | None = None
_engine: Engine | None = None


@contextmanager
def shared_engine() -> Iterator[Engine]:
    """One engine for the session's containers; images made ready on first use."""
    global _users, _stack, _engine  # noqa: PLW0603 - a session-wide, reference-counted engine
    if _engine is None:
        stack = contextlib.ExitStack()
        engine = stack.enter_context(docker_engine())
        if not engine.available:
            stack.close()
            raise SystemExit(f"TEST_INFRA=containers: {engine.skip_reason}")
        saved = dict(os.environ)
        os.environ.update(engine.env)
        os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
        stack.callback(_restore, saved)
        from tests.containers.standins.build import build_all

        build_all()
        _stack, _engine = stack, engine
    _users += 1
    try:
        yield _engine
    finally:
        _users -= 1
        if _users == 0 and _stack is not None:
            stack, _stack, _engine = _stack, None, None
            stack.close()


def _restore(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)


@contextmanager
def postgres_container() -> Iterator[str]:
    """postgres:17 with our test settings; yields a URL of its `postgres` database."""
    from testcontainers.community.postgres import PostgresContainer

    with shared_engine():
        password, port = secrets.token_urlsafe(12), free_port()
        container = PostgresContainer(
            POSTGRES_IMAGE, username="postgres", password=password, dbname="postgres"
        )
        # Published on loopback only: testcontainers would bind every address, and its
        # with_bind_ports takes no address, so the docker-py mapping is set directly.
        container.ports["5432"] = ("127.0.0.1", port)  # type: ignore[assignment]
        container.with_command("postgres -c fsync=off -c max_connections=300")
        with container:  # returns once psql answers inside the container
            # Our own URL: testcontainers may name the bridge's gateway as the host, which
            # a loopback-only port does not answer on.
            url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
            wait_for(lambda: _connects(url), timeout=60, what="PostgreSQL in its container")
            yield url


def _connects(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def kafka_container() -> Iterator[str]:
    """apache/kafka:4.2.0 configured as compose.yaml does; yields its bootstrap address.

    The client listener's container port is the host port it is published on, so the
    address the broker advertises (127.0.0.1:port) is right from the host.
    """
    from testcontainers.core.container import DockerContainer

    port = free_port()
    env = {
        "CLUSTER_ID": CLUSTER_ID,
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_LISTENERS": f"EXTERNAL://:{port},CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"EXTERNAL://127.0.0.1:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "EXTERNAL",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "6",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS": "1000",
    }
    with shared_engine():
        container = DockerContainer(KAFKA_IMAGE)
        container.ports[str(port)] = ("127.0.0.1", port)  # type: ignore[assignment]
        for key, value in env.items():
            container.with_env(key, value)
        with container:
            bootstrap = f"127.0.0.1:{port}"
            wait_for(lambda: _answers(bootstrap), timeout=120, what="Kafka in its container")
            yield bootstrap


def _answers(bootstrap: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    return bool(admin.list_topics(timeout=2).brokers)
