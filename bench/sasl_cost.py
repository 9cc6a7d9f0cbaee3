"""What SASL SCRAM-SHA-512 and ACLs cost the relay's producer: the same messages, the same
producer settings, to the same single-node broker configured with and without security.

`python -m bench.sasl_cost [--messages N] [--runs R]` starts a private broker for each
mode in turn (under .state/bench-sasl), sends N order.created-sized messages as the
relay would (its `producer_config`, principal `orders-relay` when secured) R times, and
prints the median throughput and the time to the first acknowledgement (which includes
connecting and, when secured, the SCRAM handshake).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import KafkaError, Message, Producer

from relay.publisher import producer_config
from scripts.stack import principals
from scripts.stack.kafka import LocalKafka
from scripts.stack.paths import free_port, state_dir

TOPIC = "orders.bench.sasl"
ITEM = b'{"name": "Test Product", "price": 49.99, "quantity": 3},'
VALUE = b'{"items": [' + ITEM * 16 + b"{}]}"  # about the size of an order.created


@contextmanager
def broker(secured: bool) -> Iterator[LocalKafka]:
    root = state_dir("bench-sasl", "secured" if secured else "plaintext")
    shutil.rmtree(root)
    root.mkdir()
    kafka = LocalKafka(root, free_port(), free_port(), secured=secured)
    kafka.start()
    try:
        kafka.create_topics({TOPIC: 6})
        kafka.grant(principals.TopicPlan("orders", "orders.dlq", "order-service", (TOPIC,)))
        yield kafka
    finally:
        kafka.stop()


def send(kafka: LocalKafka, messages: int) -> tuple[float, float]:
    """(events per second, seconds to the first acknowledgement) for one fresh producer."""
    started = time.perf_counter()
    first: list[float] = []
    failed: list[KafkaError] = []

    def report(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failed.append(error)
        elif not first:
            first.append(time.perf_counter() - started)

    producer = Producer(producer_config(kafka.client_config(principals.RELAY), "bench-sasl"))
    for index in range(messages):
        while True:
            try:
                producer.produce(TOPIC, VALUE, str(index % 997).encode(), on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        if index % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) or failed:
        raise RuntimeError(f"not delivered: {failed[:3]}")
    return messages / (time.perf_counter() - started), first[0]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sasl_cost", description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.messages:,} messages of {len(VALUE)} bytes, {args.runs} runs, median:")
    for secured in (False, True):
        with broker(secured) as kafka:
            send(kafka, 1000)  # warm the broker (JIT, page cache) before measuring
            runs = [send(kafka, args.messages) for _ in range(args.runs)]
        rate = statistics.median(r[0] for r in runs)
        first = statistics.median(r[1] for r in runs)
        mode = "SASL_PLAINTEXT + ACLs" if secured else "PLAINTEXT, no ACLs"
        print(f"  {mode:<22}{rate:>9,.0f} events/s   first ack after {first * 1000:,.0f} ms")


if __name__ == "__main__":
    main()
