"""compose.yaml agrees with the app: every setting is given, the app's own loader
accepts what Compose hands it, the addresses point where the servers listen, the
topics exist that relay and consumer use, and Kafka itself accepts its configuration."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from dotenv import dotenv_values
from msgspec.structs import replace

from app import config
from scripts.stack import kafka_init, principals
from scripts.stack.infra import TOPIC_PARTITIONS
from scripts.stack.kafka import LocalKafka, classpath

from .conftest import DB_LOGINS, KAFKA_LOGINS, KAFKA_PASSWORDS, PASSWORD, Resolver
from .readers import (
    IMAGE_SERVICES,
    REPO,
    SEED_NAMES,
    Service,
    containerfile,
    environment,
    image_env,
    published,
    setting_names,
)

# Which settings compose.yaml fixes, and which it takes from .env.
NOT_FOR_CONTAINERS = {"DATABASE_URL"}  # a .env's URL names the host's database
# Read by compose.yaml, not by the app: the migrate job's passwords for each process's login,
# and the kafka-init job's for each Kafka principal.
COMPOSE_ONLY = ("DB_API_PASSWORD", "DB_RELAY_PASSWORD", "DB_CONSUMER_PASSWORD", *KAFKA_PASSWORDS)


def settings_of(service: Service) -> config.Settings:
    """What the process in this container ends up with: image ENV, then compose's."""
    env = {k: v for k, v in image_env(containerfile()).items() if "$" not in v}
    return config.load(environ={**env, **environment(service)}, env_file=None)


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,…` -> {NAME: (host, port)}."""
    found = {}
    for item in value.split(","):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        found[name] = (host, int(port))
    return found


def test_every_setting_is_given_to_every_process(services: dict[str, Service]) -> None:
    wanted = set(setting_names()) - NOT_FOR_CONTAINERS
    for name in IMAGE_SERVICES:
        env = environment(services[name])
        assert wanted <= set(env), f"{name} lacks {sorted(wanted - set(env))}"
        assert not NOT_FOR_CONTAINERS & set(env), name


def test_the_apps_loader_accepts_what_compose_hands_each_process(
    services: dict[str, Service],
) -> None:
    postgres = environment(services["postgres"])
    for name in IMAGE_SERVICES:
        settings = settings_of(services[name])
        if name in KAFKA_LOGINS:  # SASL, as its own principal
            user, variable = KAFKA_LOGINS[name]
            security = settings.kafka.security
            assert (security.sasl_username, security.sasl_password) == (user, PASSWORD[variable])
        if name == "kafka-init":  # the broker's admin listener; no database
            assert settings.kafka.brokers == "127.0.0.1:9094"
            continue
        url = urlsplit(settings.database.url)
        assert (url.hostname, url.port) == ("postgres", 5432), name
        assert 5432 in published(services["postgres"]).values()
        assert url.path == "/" + postgres["POSTGRES_DB"], name
        if name == "migrate":  # the owner
            assert (url.username, url.password) == (
                postgres["POSTGRES_USER"],
                postgres["POSTGRES_PASSWORD"],
            )
        else:  # its own login, made by migrate
            user, variable = DB_LOGINS[name]
            assert (url.username, url.password) == (user, PASSWORD[variable]), name
        assert settings.kafka.brokers == "kafka:9092"
        assert settings.http.host == "0.0.0.0"
    api = settings_of(services["api"])
    assert list(published(services["api"]).values()) == [api.http.port]


def test_relay_and_consumer_share_the_topic_and_group_the_docs_name(
    services: dict[str, Service],
) -> None:
    relay, consumer = settings_of(services["relay"]), settings_of(services["consumer"])
    anyone = config.KafkaSecurity()  # each has its own principal; all else is shared
    assert replace(relay.kafka, security=anyone) == replace(consumer.kafka, security=anyone)
    documented = documented_topic_and_group()
    assert documented, "docs/containers.md (or README's 'Run with containers') names them"
    for topic, group in documented:
        assert (topic, group) == (relay.kafka.topic, relay.kafka.group_id)
    assert (relay.kafka.topic, relay.kafka.dlq_topic, relay.kafka.group_id) == (
        "orders",
        "orders.dlq",
        "order-service",
    )


def documented_topic_and_group() -> list[tuple[str, str]]:
    """(topic, group) from each "Run with containers" section: topic `x` … group `y`."""
    found = []
    for path in (REPO / "README.md", REPO / "docs" / "containers.md"):
        text = path.read_text() if path.exists() else ""
        heading = re.search(r"^(#+) Run with containers\s*$", text, re.MULTILINE)
        if heading is None:
            continue
        section = text[heading.end() :]
        end = re.search(rf"^#{{1,{len(heading[1])}}} ", section, re.MULTILINE)
        section = section[: end.start()] if end else section
        topic = re.search(r"topic `([^`]+)`", section)
        group = re.search(r"group `([^`]+)`", section)
        assert topic and group, f"{path.name}: say the topic and the consumer group"
        found.append((topic[1], group[1]))
    return found


@pytest.mark.parametrize(
    "dotenv",
    [
        {},
        {"KAFKA_TOPIC": "shop.orders", "KAFKA_DLQ_TOPIC": "shop.dead"},
        {"KAFKA_TOPIC_ORDER_CREATED": "kafka.orders.created"},
        {"KAFKA_INBOUND_TOPICS": "shop.ship=order.shipped@/ship shop.post=order.delivered@/post"},
    ],
    ids=["defaults", "renamed", "routed", "inbound"],
)
def test_kafka_init_creates_and_grants_what_relay_and_consumer_use(
    resolve: Resolver, dotenv: dict[str, str]
) -> None:
    """kafka-init reads the same settings as relay and consumer: it creates every topic
    they use, and its ACLs let each of them, by the principal compose gives it, do its work
    there — and let fulfillment write the inbound topics and nothing else."""
    stack = resolve(dotenv)
    kafka = settings_of(stack["relay"]).kafka
    assert settings_of(stack["consumer"]).kafka.topic == kafka.topic
    init = settings_of(stack["kafka-init"]).kafka
    created = kafka_init.topic_partitions(init)
    assert set(created) == {*kafka.consumed_topics, kafka.dlq_topic}
    if not dotenv:
        assert created == TOPIC_PARTITIONS, "the same topics as `make dev`"
    granted = granted_by(kafka_init.topic_plan(init, viewers=(principals.UI,)))
    relay = environment(stack["relay"])["KAFKA_SASL_USERNAME"]
    consumer = environment(stack["consumer"])["KAFKA_SASL_USERNAME"]
    for topic in kafka.own_topics:
        assert ("WRITE", "TOPIC", topic) in granted[relay], topic
    for topic in kafka.consumed_topics:
        assert ("READ", "TOPIC", topic) in granted[consumer], topic
    assert ("READ", "GROUP", kafka.group_id) in granted[consumer]
    assert ("WRITE", "TOPIC", kafka.dlq_topic) in granted[consumer]
    writes = {name for op, kind, name in granted[principals.FULFILLMENT] if op == "WRITE"}
    assert writes == {rule.topic for rule in kafka.inbound}
    assert {op for op, _, _ in granted[principals.UI]} == {"DESCRIBE", "DESCRIBE_CONFIGS", "READ"}


def granted_by(plan: principals.TopicPlan) -> dict[str, set[tuple[str, str, str]]]:
    """{principal name: {(operation, resource type, resource name)}} the plan allows."""
    found: dict[str, set[tuple[str, str, str]]] = {}
    for binding in principals.acl_bindings(plan):
        assert binding.permission_type.name == "ALLOW"
        name = binding.principal.removeprefix("User:")
        kind = binding.restype.name
        found.setdefault(name, set()).add((binding.operation.name, kind, binding.name))
    return found


def test_kafka_listeners_reach_clients_inside_and_outside(services: dict[str, Service]) -> None:
    env = environment(services["kafka"])
    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(bound) <= set(protocols)
    assert set(advertised) == set(bound) - {controller}, "advertise every broker listener"
    # Containers bootstrap at kafka:9092 and are sent back to the same listener.
    internal = {address: name for name, address in advertised.items() if address[0] == "kafka"}
    for service in ("relay", "consumer"):
        for broker in settings_of(services[service]).kafka.brokers.split(","):
            host, port = broker.rsplit(":", 1)
            name = internal[(host, int(port))]
            assert bound[name][1] == int(port), f"{service}: {broker} is not where {name} listens"
    ui = environment(services["kafka-ui"])["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"]
    assert (ui.split(":")[0], int(ui.split(":")[1])) in internal
    # The broker reaches itself on its loopback admin listener, advertised as such.
    inter = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert advertised[inter] == bound[inter] == ("127.0.0.1", bound[inter][1])
    # The host reaches localhost:9092 through the published port, and is sent back there.
    for host_port, container_port in published(services["kafka"]).items():
        (name,) = [n for n, (_, port) in bound.items() if port == container_port]
        assert advertised[name] == ("localhost", host_port)
    assert bound[controller][1] not in published(services["kafka"]).values()
    node, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node == env["KAFKA_NODE_ID"] and voter == f"127.0.0.1:{bound[controller][1]}"


def test_kafka_lets_nobody_in_without_a_password_and_an_acl(
    services: dict[str, Service],
) -> None:
    """Every listener takes SASL; the client ones SCRAM-SHA-512 only; the ones that take
    the admin's PLAIN password listen on the container's loopback only; the authorizer
    refuses what no ACL allows, and the admin is the one super user (never ANONYMOUS)."""
    env = environment(services["kafka"])
    bound = listeners(env["KAFKA_LISTENERS"])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"  # INTERNAL, EXTERNAL
    for name in ("LOCAL", "CONTROLLER"):
        assert bound[name][0] == "127.0.0.1", name
        assert env[f"KAFKA_LISTENER_NAME_{name}_SASL_ENABLED_MECHANISMS"] == "PLAIN"
        jaas = env[f"KAFKA_LISTENER_NAME_{name}_PLAIN_SASL_JAAS_CONFIG"]
        assert re.findall(r"user_([\w-]+)=", jaas) == ["orders-admin"], "one user, the admin"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "LOCAL"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith(".StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:orders-admin"
    for name in ("relay", "consumer"):
        assert settings_of(services[name]).kafka.security.protocol == "SASL_PLAINTEXT"
    init = environment(services["kafka-init"])
    assert services["kafka-init"]["network_mode"] == "service:kafka"
    assert init["KAFKA_BROKERS"] == f"127.0.0.1:{bound['LOCAL'][1]}"


def broker_properties(env: dict[str, str], log_dir: Path) -> dict[str, str]:
    """server.properties as the apache/kafka image writes it from KAFKA_* variables:
    `_` is `.`, `__` is `_`, `___` is `-` (docker/examples/README.md in Apache Kafka)."""
    not_properties = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS", "KAFKA_LOG4J_OPTS"}
    properties = {}
    for key, value in env.items():
        if key.startswith("KAFKA_") and key not in not_properties:
            name = re.sub("_{1,3}", lambda m: {1: ".", 2: "_", 3: "-"}[len(m[0])], key[6:])
            properties[name.lower()] = value
    properties["log.dirs"] = str(log_dir)
    return properties


def format_storage(properties: dict[str, str], cluster_id: str, tmp_path: Path) -> str | None:
    """Kafka's own `kafka-storage format`: it parses and validates the whole broker
    configuration (listeners, names, quorum). None when accepted, else the error."""
    config_file = tmp_path / "server.properties"
    config_file.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
    tool = ["java", "-cp", classpath(), "kafka.tools.StorageTool"]
    done = subprocess.run(
        [*tool, "format", "-t", cluster_id, "-c", str(config_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return None if done.returncode == 0 else done.stdout + done.stderr


# What the image fills in for any of these left unset (configureDefaults in the image):
# all are set explicitly, so nothing hidden decides the broker's behaviour.
IMAGE_DEFAULTED = {
    "CLUSTER_ID",
    "KAFKA_NODE_ID",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    "KAFKA_LISTENERS",
    "KAFKA_ADVERTISED_LISTENERS",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    "KAFKA_PROCESS_ROLES",
    "KAFKA_CONTROLLER_QUORUM_VOTERS",
    "KAFKA_INTER_BROKER_LISTENER_NAME",
    "KAFKA_CONTROLLER_LISTENER_NAMES",
    "KAFKA_LOG_DIRS",
}


@pytest.mark.timeout(180)
def test_kafka_accepts_the_broker_configuration(
    services: dict[str, Service], tmp_path: Path
) -> None:
    env = environment(services["kafka"])
    assert set(env) >= IMAGE_DEFAULTED, sorted(IMAGE_DEFAULTED - set(env))
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16 and len(cluster_id) == 22
    properties = broker_properties(env, tmp_path / "data")
    assert format_storage(properties, cluster_id, tmp_path) is None
    # …and the same check refuses a configuration that cannot work.
    broken = {**properties, "inter.broker.listener.name": "NOWHERE", "log.dirs": str(tmp_path)}
    error = format_storage(broken, cluster_id, tmp_path)
    assert error is not None and "NOWHERE" in error


def test_kafka_checks_run_the_release_the_stack_runs(services: dict[str, Service]) -> None:
    pom = (REPO / "scripts" / "stack" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert version, "scripts/stack/kafka/pom.xml names the Kafka release"
    assert services["kafka"]["image"] == f"apache/kafka:{version[1]}"


# Where the two brokers must differ: compose's users come after its start (kafka-init), so
# it talks to itself with PLAIN on a listener of its own, make dev's with SCRAM; make dev's
# listener is TLS with a CA of its own, compose's is not (README "Security").
SECURITY_KEYS = ("sasl.mechanism.", "listener.name.", "super.users", "ssl.")


def test_broker_behaves_as_under_make_dev(services: dict[str, Service], tmp_path: Path) -> None:
    """Same replication, topic creation and group settings as scripts/stack/kafka.py."""
    local_file = LocalKafka(tmp_path, port=1, controller_port=2)._write_config()
    local = dict(line.split("=", 1) for line in local_file.read_text().splitlines() if line)
    ours = broker_properties(environment(services["kafka"]), tmp_path)
    addresses = {
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
        "inter.broker.listener.name",
        "controller.listener.names",
        "controller.quorum.bootstrap.servers",
        "controller.quorum.voters",
        "log.dirs",
    }
    # The same authorizer, no-ACL-no-access rule and client mechanism; who talks to whom
    # inside the broker differs (SECURITY_KEYS).
    addresses |= {k for k in local if k.startswith(SECURITY_KEYS)}
    assert {k: v for k, v in local.items() if k not in addresses} == {
        k: v for k, v in ours.items() if k not in addresses and k in local
    }
    assert set(local) - addresses <= set(ours)


# --- .env.example -------------------------------------------------------------------------


def test_env_example_lists_every_setting_seed_names_first() -> None:
    listed = list(dotenv_values(REPO / ".env.example"))
    assert sorted(listed) == sorted([*setting_names(), *COMPOSE_ONLY])
    assert listed[: len(SEED_NAMES)] == SEED_NAMES


def test_env_example_values_are_the_defaults() -> None:
    """An unchanged copy changes nothing."""
    example = config.load(environ={}, env_file=str(REPO / ".env.example"))
    assert example == config.load(environ={}, env_file=None)


def test_env_example_comments_every_variable() -> None:
    lines = (REPO / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"[A-Z_]+=", line):
            assert lines[index - 1].startswith("# "), f"{line}: add a one-line comment above"


def test_an_unchanged_env_example_leaves_the_stack_as_it_is(
    resolve: Resolver, services: dict[str, Service]
) -> None:
    """...once it has the password compose.yaml requires (no default; tests of that in
    test_compose_stack.py)."""
    example = {k: v or "" for k, v in dotenv_values(REPO / ".env.example").items()}
    copied = resolve({**example, **PASSWORD})
    for name in IMAGE_SERVICES:
        assert settings_of(copied[name]) == settings_of(services[name]), name
    assert published(copied["api"]) == published(services["api"])
