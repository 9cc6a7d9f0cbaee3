"""The least the pipeline's Kafka traffic can be, for `bench.floor`: no database, no logic.

`python -m bench.floor_kafka RATE SECONDS` (client settings as JSON in `FLOOR_KAFKA`) sends
two events an order at RATE orders a second for SECONDS, as the relay sends them: one
transactional producer, a transaction every tick with what came due in it, each event the
bench's `order.created` payload and CloudEvents headers, both of an order under its
customer's key. A `read_committed` consumer in the same process reads them back from where
the topic ended when it started (offsets committed by the client every second). Prints one
JSON line: what was sent and read.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.relay_drain import template
from bench.stack import RAW_TOPIC
from relay.publisher import producer_config
from relay.transactional import transactional_config

TICK = 0.02  # seconds between transactions: the relay's cycle at these rates is ~20-40 ms
EVENTS_PER_ORDER = 2  # order.created, then the consumer's order.confirmed
TIMEOUT = 10.0  # each Kafka call


def produce(client: dict[str, Any], rate: int, seconds: int, sent: list[int]) -> None:
    """Send `rate` orders' events a second for `seconds`, on schedule, a transaction a tick."""
    config = producer_config(client, "orders-floor")
    config["transactional.id"] = f"orders-relay.floor-{uuid.uuid4()}"
    producer = Producer(transactional_config(config, timeout=TIMEOUT))
    producer.init_transactions(TIMEOUT)
    message = template(RAW_TOPIC)
    headers: list[tuple[str, str | bytes | None]] = list(message.headers.items())
    started, orders = time.monotonic(), rate * seconds
    while sent[1] < orders:
        due = min(orders, int((time.monotonic() - started) * rate)) - sent[1]
        if due > 0:
            producer.begin_transaction()
            for _ in range(due):
                key = str(uuid.uuid4())
                for _ in range(EVENTS_PER_ORDER):
                    producer.produce(RAW_TOPIC, message.payload, key, headers=headers)
            producer.commit_transaction(TIMEOUT)
            sent[0], sent[1] = sent[0] + 1, sent[1] + due
        time.sleep(TICK)  # the pace of the load, not a wait for a condition
    producer.flush(TIMEOUT)


def at_the_end(client: dict[str, Any]) -> Consumer:
    """A consumer of every partition of the topic, from where each ends now: what an
    earlier run sent is not read again."""
    consumer = Consumer(
        {
            **client,
            "group.id": f"orders-floor-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "auto.commit.interval.ms": 1000,
        }
    )
    found = consumer.list_topics(RAW_TOPIC, timeout=TIMEOUT).topics[RAW_TOPIC].partitions
    ends = [
        TopicPartition(
            RAW_TOPIC,
            p,
            consumer.get_watermark_offsets(TopicPartition(RAW_TOPIC, p), timeout=TIMEOUT)[1],
        )
        for p in found
    ]
    consumer.assign(ends)
    return consumer


def consume(consumer: Consumer, expected: int, deadline: float) -> int:
    """Read `expected` messages (or until `deadline`), touching each value and its headers."""
    read = 0
    try:
        while read < expected and time.monotonic() < deadline:
            for record in consumer.consume(500, 0.5):
                # What a consumer must look at to decode an event: its value and headers.
                if record.error() is None and record.value() and record.headers():
                    read += 1
    finally:
        consumer.close()
    return read


def main(argv: list[str]) -> int:
    rate, seconds = int(argv[0]), int(argv[1])
    client = json.loads(os.environ["FLOOR_KAFKA"])
    sent = [0, 0]  # transactions, orders
    consumer = at_the_end(client)
    producer = threading.Thread(target=produce, args=(client, rate, seconds, sent), daemon=True)
    producer.start()
    expected = rate * seconds * EVENTS_PER_ORDER
    read = consume(consumer, expected, time.monotonic() + seconds + 60)
    producer.join(TIMEOUT)
    print(json.dumps({"orders": sent[1], "transactions": sent[0], "read": read}))
    return 0 if read == expected else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
