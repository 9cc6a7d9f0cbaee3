"""The transactional producers' names and bounds (no Kafka needed)."""

from __future__ import annotations

import uuid

from relay.publisher import producer_config
from relay.transactional import transactional_config, transactional_id


def test_each_relay_has_its_own_transactional_id_under_the_granted_prefix() -> None:
    relays = [uuid.uuid4() for _ in range(3)]
    ids = {transactional_id("orders-relay", relay) for relay in relays}
    assert len(ids) == 3
    assert transactional_id("orders-relay", relays[0]) == f"orders-relay.relay-{relays[0]}"
    assert all(i.startswith("orders-relay.") for i in ids)  # one prefixed ACL covers all


def test_a_transaction_and_its_messages_are_bounded_by_the_kafka_timeout() -> None:
    base = producer_config({"bootstrap.servers": "127.0.0.1:9092"}, "relay")
    config = transactional_config(base, timeout=5)
    assert base["message.timeout.ms"] == 0  # without fencing: never give up on a message
    # librdkafka refuses a message timeout longer than the transaction's
    assert config["message.timeout.ms"] <= config["transaction.timeout.ms"] == 15_000
    assert config["socket.timeout.ms"] == 5_000
    assert config["enable.idempotence"] is True and config["acks"] == "all"
