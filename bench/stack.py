"""The system under test: PostgreSQL and Kafka (given, or started like `make dev` does),
the schema, and our three processes, each started and stopped by PID when a phase needs it."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka.admin import AdminClient

from app import config
from app.db.engine import libpq_url
from bench.ui import console, step
from scripts.stack import infra, principals
from scripts.stack.infra import Infra
from scripts.stack.kafka import create_topics
from scripts.stack.paths import REPO, free_port, state_dir
from scripts.stack.processes import ManagedProcess, child_env, migrate
from scripts.stack.tokens import dev_auth
from scripts.stack.waiting import wait_for

SERVICES = ("api", "relay", "consumer")
DRAIN_TOPIC = "orders.bench"  # relay drain: nobody consumes it
RAW_TOPIC = "orders.bench.raw"  # the raw producer's baseline

Sql = psycopg.Connection[tuple[Any, ...]]


# --- What every client of the bench presents: the one place for credentials --------------
# The API's bearer token and Kafka's SASL settings go into these two functions and nowhere
# else: the load generators (vegeta targets, the wrk script) take their headers from
# `request_headers`, and every Kafka client the bench makes (topic admin, raw producer)
# starts from `Stack.kafka_client` (acting as one principal of the stack).


def request_headers(token: str | None) -> dict[str, str]:
    """Headers every request the bench sends carries. Orders are for random customers, so
    the token must be allowed to create orders for any customer (staff scope)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


@dataclass(frozen=True)
class Api:
    """Where the API answers and what each request carries."""

    base_url: str
    headers: dict[str, str]

    @property
    def orders_url(self) -> str:
        return f"{self.base_url}/api/v1/orders"


@dataclass
class Stack:
    found: Infra
    root: Path
    http_port: int
    env: dict[str, str]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    retired: list[ManagedProcess] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api(self) -> Api:
        return Api(self.base_url, request_headers(dev_auth().key.admin()))

    @property
    def settings(self) -> config.Settings:
        """What our processes will read (the environment, `.env`, then the defaults)."""
        return config.load(child_env(self.env), env_file=str(REPO / ".env"))

    @property
    def database_url(self) -> str:
        """As libpq (psql, pgbench, psycopg) takes it, whatever form DATABASE_URL had."""
        return libpq_url(config.sqlalchemy_url(self.found.database_url))

    def kafka_client(self, principal: str = principals.ADMIN) -> dict[str, str]:
        """librdkafka settings acting as `principal` (a given Kafka: as the environment says)."""
        if self.found.kafka is None:
            return config.kafka_client_config(self.settings.kafka)
        return self.found.kafka.client_config(principal)

    def sql(self) -> Sql:
        return psycopg.connect(self.database_url, autocommit=True)

    def pid(self, name: str) -> int | None:
        process = self.processes.get(name)
        return process.pid if process is not None and process.returncode is None else None

    def start(self, name: str, extra_env: dict[str, str] | None = None) -> ManagedProcess:
        if name in self.processes and self.processes[name].returncode is None:
            return self.processes[name]
        env = {**self.env, **self.found.process_env(name)}  # its own user and principal
        process = ManagedProcess.service(
            name,
            {**env, **(extra_env or {})},
            sink=None,
            log_path=self.root / "logs" / f"{name}.log",
        )
        process.start()
        self.processes[name] = process
        if name == "api":
            wait_for(self._api_ready, timeout=60, what="the API to answer /health/ready")
        return process

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            code = process.stop()
            if code not in (0, None, -15):
                console.log(f"[yellow]{name} exited with {code}; see {process.log_path}")
            self.retired.append(process)

    def stop_all(self) -> None:
        for name in reversed(SERVICES):
            self.stop(name)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: {process.log_path}")

    def _api_ready(self) -> bool:
        self.check_alive()
        with urllib.request.urlopen(f"{self.base_url}/health/ready", timeout=2) as response:
            return bool(response.status == 200)


def _service_env(found: Infra, http_port: int) -> dict[str, str]:
    return {
        **found.env(),
        "HTTP_PORT": str(http_port),
        "LOG_LEVEL": "warning",
        # As a deployment on this machine would run it: one API worker per core.
        "HTTP_WORKERS": os.environ.get("HTTP_WORKERS", str(os.cpu_count() or 1)),
        "LOG_FORMAT": "json",
        "RELAY_METRICS_PORT": str(free_port()),
        "CONSUMER_METRICS_PORT": str(free_port()),
        "HTTP_METRICS_PORT": str(free_port()),
        **dev_auth().env(),  # the load is sent with a staff token (bench.api_load)
        # One principal sends it all (it stands for every customer): measure the API, not
        # the per-caller limits (its rate, and its requests open at once).
        "RATE_LIMIT_PER_MINUTE": "0",
        "HTTP_MAX_IN_FLIGHT_PER_CALLER": "0",
    }


@contextmanager
def running() -> Iterator[Stack]:
    """Infrastructure, migrated schema and the bench topics; services are started by phases.

    Everything started here is stopped on the way out, Ctrl-C included.
    """
    root = state_dir("bench")
    # Ports are passed explicitly: infra.running's default ({}) trips over port 0 being "free".
    ports = {name: free_port() for name in ("postgres", "kafka", "controller")}
    with infra.running("bench", fresh=True, fsync=True, preferred_ports=ports) as found:
        (root / "logs").mkdir(parents=True, exist_ok=True)
        http_port = free_port()
        stack = Stack(found, root, http_port, _service_env(found, http_port))
        try:
            with step("migrating the database"):
                migrate(stack.env)
                found.create_logins()
            admin = AdminClient({**stack.kafka_client(), "log_level": 0})
            orders_partitions = found.topics.get("orders", 6)
            create_topics(
                admin,
                {
                    "orders": orders_partitions,
                    "orders.dlq": 1,
                    "orders.fulfillment": orders_partitions,  # the default inbound topic
                    DRAIN_TOPIC: orders_partitions,
                    RAW_TOPIC: orders_partitions,
                },
            )
            if found.kafka is not None:  # the relay drains to these; the raw producer is the relay
                found.kafka.grant(
                    principals.TopicPlan(
                        "orders", "orders.dlq", "order-service", routed=(DRAIN_TOPIC, RAW_TOPIC)
                    )
                )
            del admin  # its connections would outlive Kafka at the end, complaining
            yield stack
        finally:
            stack.stop_all()
