"""Each Kafka principal can do its own work on the real broker and is refused the rest.

The broker runs as `make dev`'s does (SASL SCRAM-SHA-512, StandardAuthorizer,
allow.everyone.if.no.acl.found=false); the ACLs are the `topics` fixture's,
granted by the same code as `make dev`'s (scripts/stack/principals.py).
"""

from __future__ import annotations

import subprocess
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from scripts.stack.principals import ADMIN, CONSUMER, FULFILLMENT, RELAY
from tests.support import kcat
from tests.support.pipeline import Topics
from tests.support.servers import KafkaServer


@pytest.fixture(autouse=True)
def _local_broker(kafka: KafkaServer) -> None:
    if kafka.local is None:
        pytest.skip("a given broker's ACLs are its operator's")


@pytest.fixture
def inbound(kafka: KafkaServer, topics: Topics) -> str:
    name = f"{topics.orders}.fulfillment"  # granted by the `topics` fixture
    kafka.create_topics({name: 1})
    return name


def produce(kafka: KafkaServer, principal: str, topic: str) -> KafkaError | None:
    """Write one record as `principal`; the broker's answer (None: accepted)."""
    producer = Producer(
        {
            **kafka.client_config(principal),
            "enable.idempotence": True,
            "message.timeout.ms": 10_000,
            "log_level": 0,
        }
    )
    outcome: list[KafkaError | None] = []
    producer.produce(topic, b"{}", b"key", on_delivery=lambda error, _: outcome.append(error))
    producer.flush(15)
    assert outcome, "no delivery report"
    return outcome[0]


def consume(kafka: KafkaServer, principal: str, topic: str, group: str) -> KafkaError | None:
    """Read from `topic` as `principal` in `group`; the first error (None: readable)."""
    consumer = Consumer(
        {
            **kafka.client_config(principal),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    try:
        consumer.subscribe([topic])
        for _ in range(40):
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None or error.code() == KafkaError._PARTITION_EOF:
                return None
            return error
        raise AssertionError(f"no answer reading {topic} as {principal}")
    finally:
        consumer.close()


def refused(error: KafkaError | None) -> bool:
    return error is not None and error.code() in {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    }


def test_each_principal_writes_where_it_must(
    kafka: KafkaServer, topics: Topics, inbound: str
) -> None:
    assert produce(kafka, RELAY, topics.orders) is None
    assert produce(kafka, CONSUMER, topics.dlq) is None
    assert produce(kafka, FULFILLMENT, inbound) is None
    assert produce(kafka, ADMIN, topics.orders) is None


@pytest.mark.parametrize(
    ("principal", "topic"),
    [
        (FULFILLMENT, "orders"),  # an outside system cannot forge our events …
        (FULFILLMENT, "dlq"),
        (CONSUMER, "orders"),  # … nor can the consumer
        (CONSUMER, "inbound"),
        (RELAY, "dlq"),
        (RELAY, "inbound"),
    ],
)
def test_every_other_write_is_refused(
    kafka: KafkaServer, topics: Topics, inbound: str, principal: str, topic: str
) -> None:
    names = {"orders": topics.orders, "dlq": topics.dlq, "inbound": inbound}
    assert refused(produce(kafka, principal, names[topic]))


def test_the_consumer_reads_as_its_group_only(
    kafka: KafkaServer, topics: Topics, inbound: str
) -> None:
    group = f"group-{topics.orders}"
    assert consume(kafka, CONSUMER, topics.orders, group) is None
    assert consume(kafka, CONSUMER, inbound, group) is None
    assert refused(consume(kafka, CONSUMER, topics.orders, f"other-{uuid.uuid4().hex[:6]}"))


@pytest.mark.parametrize("principal", [RELAY, FULFILLMENT])
def test_others_cannot_read_the_orders(kafka: KafkaServer, topics: Topics, principal: str) -> None:
    assert refused(consume(kafka, principal, topics.orders, f"group-{topics.orders}"))


def test_kcat_as_fulfillment_is_refused_on_orders(kafka: KafkaServer, topics: Topics) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        kcat.produce(kafka.client_config(FULFILLMENT), topics.orders, b"{}", key="k")
    assert b"Topic authorization failed" in failed.value.stderr


@pytest.mark.parametrize("password", ["wrong", "x" * 10_000])
def test_a_wrong_password_gets_nothing(kafka: KafkaServer, topics: Topics, password: str) -> None:
    client = {**kafka.client_config(RELAY), "sasl.password": password, "log_level": "0"}
    producer = Producer({**client, "message.timeout.ms": 5000})
    outcome: list[KafkaError | None] = []
    producer.produce(topics.orders, b"{}", on_delivery=lambda error, _: outcome.append(error))
    producer.flush(10)
    assert outcome and outcome[0] is not None
    with pytest.raises(KafkaException):
        Consumer({**client, "group.id": "g"}).list_topics(timeout=5)
