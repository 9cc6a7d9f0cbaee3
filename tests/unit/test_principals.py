"""The ACL plan: each principal gets exactly what its work needs (scripts/stack/principals.py)."""

from __future__ import annotations

from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from scripts.stack.principals import (
    ADMIN,
    CONSUMER,
    FULFILLMENT,
    RELAY,
    TopicPlan,
    acl_bindings,
)

PLAN = TopicPlan("orders", "orders.dlq", "order-service", routed=("kafka.orders.created",))


def grants(principal: str) -> set[tuple[str, str, str, str]]:
    return {
        (b.restype.name, b.name, b.resource_pattern_type.name, b.operation.name)
        for b in acl_bindings(PLAN)
        if b.principal == f"User:{principal}"
    }


def test_the_relay_writes_our_topics_idempotently_and_transactionally() -> None:
    assert grants(RELAY) == {
        ("TOPIC", "orders", "LITERAL", "WRITE"),
        ("TOPIC", "orders", "LITERAL", "DESCRIBE"),
        ("TOPIC", "kafka.orders.created", "LITERAL", "WRITE"),
        ("TOPIC", "kafka.orders.created", "LITERAL", "DESCRIBE"),
        ("BROKER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE"),
        ("TRANSACTIONAL_ID", "orders-relay", "PREFIXED", "WRITE"),
        ("TRANSACTIONAL_ID", "orders-relay", "PREFIXED", "DESCRIBE"),
    }


def test_the_consumer_reads_as_its_group_and_writes_only_the_dlq() -> None:
    found = grants(CONSUMER)
    assert ("GROUP", "order-service", "LITERAL", "READ") in found
    for topic in ("orders", "kafka.orders.created", "orders.fulfillment"):
        assert ("TOPIC", topic, "LITERAL", "READ") in found
    writes = {name for kind, name, _, operation in found if operation == "WRITE"}
    assert writes == {"orders.dlq"}


def test_fulfillment_writes_its_inbound_topic_only() -> None:
    assert grants(FULFILLMENT) == {
        ("TOPIC", "orders.fulfillment", "LITERAL", "WRITE"),
        ("TOPIC", "orders.fulfillment", "LITERAL", "DESCRIBE"),
    }


def test_no_grant_is_a_wildcard_and_the_admin_needs_none() -> None:
    bindings = acl_bindings(PLAN)
    assert all(b.name != "*" and b.principal != "User:*" for b in bindings)
    assert all(b.operation != AclOperation.ALL for b in bindings)
    assert not grants(ADMIN)  # a super user
    prefixed = [b for b in bindings if b.resource_pattern_type == ResourcePatternType.PREFIXED]
    assert {b.restype for b in prefixed} == {ResourceType.TRANSACTIONAL_ID}
