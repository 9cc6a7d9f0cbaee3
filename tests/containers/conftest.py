"""Fixtures: compose.yaml resolved by Compose (cached per `.env` content)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
import yaml

from .readers import COMPOSE_FILE, Service, run_compose_config

Resolver = Callable[[Mapping[str, str]], dict[str, Service]]

# compose.yaml has no default passwords: every resolution gets them unless it names its own
# (the owner's, each process's login's, and each Kafka principal's).
PASSWORD = {
    "DB_PASSWORD": "compose-test-secret",
    "DB_API_PASSWORD": "compose-test-api",
    "DB_RELAY_PASSWORD": "compose-test-relay",
    "DB_CONSUMER_PASSWORD": "compose-test-consumer",
    "KAFKA_ADMIN_PASSWORD": "compose-test-kafka-admin",
    "KAFKA_RELAY_PASSWORD": "compose-test-kafka-relay",
    "KAFKA_CONSUMER_PASSWORD": "compose-test-kafka-consumer",
    "KAFKA_FULFILLMENT_PASSWORD": "compose-test-kafka-fulfillment",
    "KAFKA_UI_PASSWORD": "compose-test-kafka-ui",
}
KAFKA_PASSWORDS = tuple(name for name in PASSWORD if name.startswith("KAFKA_"))
# Who each image service logs in to PostgreSQL as: the owner migrates, each process is itself.
DB_LOGINS = {
    "migrate": ("DB_USER", "DB_PASSWORD"),
    "api": ("orders_api_user", "DB_API_PASSWORD"),
    "relay": ("orders_relay_user", "DB_RELAY_PASSWORD"),
    "consumer": ("orders_consumer_user", "DB_CONSUMER_PASSWORD"),
}
# Who each service connects to Kafka as (SASL SCRAM-SHA-512; kafka-init: PLAIN, admin listener).
KAFKA_LOGINS = {
    "relay": ("orders-relay", "KAFKA_RELAY_PASSWORD"),
    "consumer": ("orders-consumer", "KAFKA_CONSUMER_PASSWORD"),
    "kafka-init": ("orders-admin", "KAFKA_ADMIN_PASSWORD"),
}


@pytest.fixture(scope="session")
def resolve(tmp_path_factory: pytest.TempPathFactory) -> Resolver:
    """compose.yaml's services, resolved by Compose with `dotenv` (and the passwords,
    unless it has them) as the .env file."""
    cache: dict[tuple[tuple[str, str], ...], dict[str, Service]] = {}

    def resolved(dotenv: Mapping[str, str]) -> dict[str, Service]:
        dotenv = {**PASSWORD, **dotenv}
        key = tuple(sorted(dotenv.items()))
        if key not in cache:
            done = run_compose_config(COMPOSE_FILE, dotenv, tmp_path_factory.mktemp("compose"))
            assert done.returncode == 0, f"Compose rejected compose.yaml:\n{done.stderr}"
            cache[key] = yaml.safe_load(done.stdout)["services"]
        return cache[key]

    return resolved


@pytest.fixture(scope="session")
def services(resolve: Resolver) -> dict[str, Service]:
    """compose.yaml as `make up` sees it on a fresh clone whose .env sets the passwords only."""
    return resolve({})
