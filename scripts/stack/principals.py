"""Who may do what on the local Kafka: SCRAM principals, their passwords and ACLs.

One principal per process and per outside system, each with exactly the ACLs its
work needs (the broker runs with `allow.everyone.if.no.acl.found=false`, so
anything not granted here is refused):

- `orders-relay` writes `orders` and the routed topics, idempotently, and may
  use transactional ids starting with `orders-relay`;
- `orders-consumer` reads `orders`, the routed and the inbound topics as its
  group, and writes the DLQ;
- `fulfillment` (an example outside system) writes its inbound topic only;
- `orders-admin` is a super user (topic setup, tests, DLQ replay); the broker
  talks to itself as it too;
- `orders-ui` (compose's Kafka UI only) describes and reads, and writes nothing.

`make dev`, compose's `kafka-init` job (scripts/stack/kafka_init.py), the tests and the
bench all take their principals and ACLs from here.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from scripts.stack import credentials
from scripts.stack.waiting import wait_for

ADMIN = "orders-admin"
RELAY = "orders-relay"
CONSUMER = "orders-consumer"
FULFILLMENT = "fulfillment"
PRINCIPALS = (ADMIN, RELAY, CONSUMER, FULFILLMENT)
UI = "orders-ui"  # compose's Kafka UI: a viewer (TopicPlan.viewers), not in PRINCIPALS
PROCESS_PRINCIPALS = {"relay": RELAY, "consumer": CONSUMER}  # the api never talks to Kafka
CONTROLLER = "controller"  # the KRaft controller listener's own (PLAIN) user, broker-internal
MECHANISM = "SCRAM-SHA-512"
PROTOCOL = "SASL_PLAINTEXT"  # loopback only; see README "Security" for why not SASL_SSL
TLS_PROTOCOL = "SASL_SSL"  # LocalKafka(tls=True): TLS with a CA of the stack's own (certs.py)
TRANSACTIONAL_ID_PREFIX = "orders-relay"
SCRAM_ITERATIONS = 8192


@dataclass(frozen=True)
class TopicPlan:
    """The names the ACLs are about: one deployment's (or one test's) topics and group."""

    orders: str
    dlq: str
    group: str
    routed: tuple[str, ...] = ()
    # outside system -> the inbound topics it writes (and the consumer reads)
    inbound: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {FULFILLMENT: ("orders.fulfillment",)}
    )
    # principals that may look at everything and change nothing (compose's Kafka UI)
    viewers: tuple[str, ...] = ()


def _allow(
    principal: str,
    operation: AclOperation,
    resource: ResourceType,
    name: str,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
) -> AclBinding:
    return AclBinding(
        resource, name, pattern, f"User:{principal}", "*", operation, AclPermissionType.ALLOW
    )


def acl_bindings(plan: TopicPlan) -> list[AclBinding]:
    """Every ACL the principals need for `plan` (the admin needs none: super user)."""
    topic, write, read, describe = (
        ResourceType.TOPIC,
        AclOperation.WRITE,
        AclOperation.READ,
        AclOperation.DESCRIBE,
    )
    inbound = [name for topics in plan.inbound.values() for name in topics]
    bindings = [
        _allow(RELAY, AclOperation.IDEMPOTENT_WRITE, ResourceType.BROKER, "kafka-cluster"),
        *(
            _allow(
                RELAY,
                operation,
                ResourceType.TRANSACTIONAL_ID,
                TRANSACTIONAL_ID_PREFIX,
                ResourcePatternType.PREFIXED,
            )
            for operation in (write, describe)
        ),
        _allow(CONSUMER, read, ResourceType.GROUP, plan.group),
        _allow(CONSUMER, write, topic, plan.dlq),
        _allow(CONSUMER, describe, topic, plan.dlq),
    ]
    for name in (plan.orders, *plan.routed):
        bindings += [_allow(RELAY, op, topic, name) for op in (write, describe)]
    for name in (plan.orders, *plan.routed, *inbound):
        bindings += [_allow(CONSUMER, op, topic, name) for op in (read, describe)]
    for system, topics in plan.inbound.items():
        for name in topics:
            bindings += [_allow(system, op, topic, name) for op in (write, describe)]
    for viewer in plan.viewers:
        bindings += viewer_bindings(viewer)
    return bindings


def viewer_bindings(principal: str) -> list[AclBinding]:
    """Look, never touch: describe the cluster, every topic and group, and read records
    (a UI shows messages). No write, create, delete, alter or offset commit."""
    describe, configs = AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS
    cluster, topic, group = ResourceType.BROKER, ResourceType.TOPIC, ResourceType.GROUP
    return [
        _allow(principal, describe, cluster, "kafka-cluster"),
        _allow(principal, configs, cluster, "kafka-cluster"),
        *(_allow(principal, op, topic, "*") for op in (describe, configs, AclOperation.READ)),
        _allow(principal, describe, group, "*"),
    ]


def grant(admin: AdminClient, plan: TopicPlan, timeout: float = 30) -> None:
    """Create the ACLs of `plan` (creating one that exists is a no-op); return once the
    broker enforces them, so a process started next finds its rights in place."""
    wanted = acl_bindings(plan)
    for future in admin.create_acls(wanted, request_timeout=timeout).values():
        future.result(timeout)
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )

    def in_force() -> bool:
        return set(wanted) <= set(admin.describe_acls(everything).result(timeout))

    wait_for(in_force, timeout=timeout, interval=0.1, what="the Kafka ACLs")


def passwords(path: Path) -> dict[str, str]:
    """This stack's passwords: read from `path`, or generated once and kept there (0600)."""
    return credentials.load_or_make(path, (*PRINCIPALS, CONTROLLER))


def create_users(
    admin: AdminClient,
    users: Mapping[str, str],
    login: Callable[[str], dict[str, str]],
    timeout: float = 30,
) -> None:
    """SCRAM credentials for each name in `users` (name -> password; an upsert: a changed
    password replaces the old); return once each can log in with the client settings
    `login(name)` gives (SCRAM users take effect through the metadata log, not at once)."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts = [
        UserScramCredentialUpsertion(name, info, password.encode(), secrets.token_bytes(16))
        for name, password in users.items()
    ]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout)
    for name in users:
        config = {**login(name), "log_level": "0"}
        wait_for(
            lambda config=config: _authenticates(config),
            timeout=timeout,
            what=f"Kafka to know user {name}",
        )


def _authenticates(config: dict[str, str]) -> bool:
    try:
        AdminClient(config).list_topics(timeout=2)
    except KafkaException:
        return False
    return True


def client_config(
    brokers: str, principal: str, password: str, ca: Path | None = None
) -> dict[str, str]:
    """librdkafka settings for a client acting as `principal`; over TLS, trusting the
    CA certificate `ca`, when one is given."""
    tls = {"ssl.ca.location": str(ca)} if ca else {}
    return {
        "bootstrap.servers": brokers,
        "security.protocol": (TLS_PROTOCOL if ca else PROTOCOL).lower(),
        "sasl.mechanisms": MECHANISM,
        "sasl.username": principal,
        "sasl.password": password,
        **tls,
    }


def process_env(
    brokers: str, principal: str, password: str, ca: Path | None = None
) -> dict[str, str]:
    """The environment that makes one of our processes connect as `principal` (over TLS,
    trusting `ca`, when one is given)."""
    tls = {"KAFKA_SSL_CA_LOCATION": str(ca)} if ca else {}
    return {
        "KAFKA_BROKERS": brokers,
        "KAFKA_SECURITY_PROTOCOL": TLS_PROTOCOL if ca else PROTOCOL,
        "KAFKA_SASL_MECHANISM": MECHANISM,
        "KAFKA_SASL_USERNAME": principal,
        "KAFKA_SASL_PASSWORD": password,
        **tls,
    }


def write_properties(
    directory: Path, brokers: str, found: Mapping[str, str], ca: Path | None = None
) -> list[Path]:
    """`<principal>.properties` for each principal, usable as `kcat -F <file>` (0600)."""
    written = []
    for name in PRINCIPALS:
        path = directory / f"{name}.properties"
        config = client_config(brokers, name, found[name], ca)
        lines = [f"{k}={v}" for k, v in config.items()]
        credentials.write_private(path, "\n".join(lines) + "\n")
        written.append(path)
    return written
