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
  talks to itself as it too.

`make dev`, the tests and the bench all take their principals from here.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
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
PROCESS_PRINCIPALS = {"relay": RELAY, "consumer": CONSUMER}  # the api never talks to Kafka
CONTROLLER = "controller"  # the KRaft controller listener's own (PLAIN) user, broker-internal
MECHANISM = "SCRAM-SHA-512"
PROTOCOL = "SASL_PLAINTEXT"  # loopback only; see README "Security" for why not SASL_SSL
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
    return bindings


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


def create_users(brokers: str, found: Mapping[str, str], timeout: float = 30) -> None:
    """SCRAM credentials for every principal (an upsert: a changed password replaces the
    old); return once each can log in."""
    admin = AdminClient({**client_config(brokers, ADMIN, found[ADMIN]), "log_level": "0"})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts = [
        UserScramCredentialUpsertion(name, info, found[name].encode(), secrets.token_bytes(16))
        for name in PRINCIPALS
    ]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout)
    for name in PRINCIPALS:
        config = {**client_config(brokers, name, found[name]), "log_level": "0"}
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


def client_config(brokers: str, principal: str, password: str) -> dict[str, str]:
    """librdkafka settings for a client acting as `principal`."""
    return {
        "bootstrap.servers": brokers,
        "security.protocol": PROTOCOL.lower(),
        "sasl.mechanisms": MECHANISM,
        "sasl.username": principal,
        "sasl.password": password,
    }


def process_env(brokers: str, principal: str, password: str) -> dict[str, str]:
    """The environment that makes one of our processes connect as `principal`."""
    return {
        "KAFKA_BROKERS": brokers,
        "KAFKA_SECURITY_PROTOCOL": PROTOCOL,
        "KAFKA_SASL_MECHANISM": MECHANISM,
        "KAFKA_SASL_USERNAME": principal,
        "KAFKA_SASL_PASSWORD": password,
    }


def write_properties(directory: Path, brokers: str, found: Mapping[str, str]) -> list[Path]:
    """`<principal>.properties` for each principal, usable as `kcat -F <file>` (0600)."""
    written = []
    for name in PRINCIPALS:
        path = directory / f"{name}.properties"
        lines = [f"{k}={v}" for k, v in client_config(brokers, name, found[name]).items()]
        credentials.write_private(path, "\n".join(lines) + "\n")
        written.append(path)
    return written
