"""What SASL SCRAM-SHA-512, ACLs and TLS cost the relay's producer: the same messages, the
same producer settings, to the same single-node broker configured three ways —
PLAINTEXT without ACLs, SASL_PLAINTEXT with ACLs (`make dev`'s), and SASL_SSL with ACLs
(TLS with a CA made for the run, scripts/stack/certs.py).

`python -m bench.sasl_cost [--messages N] [--runs R] [--modes …]` starts a private broker
for each mode in turn (under .state/bench-sasl), sends N order.created-sized messages as
the relay would (its `producer_config`, principal `orders-relay` when secured) R times,
and prints the median throughput, its ratio to PLAINTEXT's, and the time to the first
acknowledgement (which includes connecting and, when secured, the TLS and SCRAM
handshakes).
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


# mode -> (label, secured, tls)
MODES = {
    "plaintext": ("PLAINTEXT, no ACLs", False, False),
    "sasl": ("SASL_PLAINTEXT + ACLs", True, False),
    "sasl_ssl": ("SASL_SSL + ACLs", True, True),
}


@contextmanager
def broker(mode: str) -> Iterator[LocalKafka]:
    """A fresh broker configured as `mode` says, stopped on exit."""
    _, secured, tls = MODES[mode]
    root = state_dir("bench-sasl", mode)
    shutil.rmtree(root)
    root.mkdir()
    kafka = LocalKafka(root, free_port(), free_port(), secured=secured, tls=tls)
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


def measure(mode: str, messages: int, runs: int) -> tuple[float, float, list[float]]:
    """(median events/s, median seconds to the first ack, every run's events/s)."""
    with broker(mode) as kafka:
        send(kafka, 1000)  # warm the broker (JIT, page cache) before measuring
        found = [send(kafka, messages) for _ in range(runs)]
    rates = [rate for rate, _ in found]
    return statistics.median(rates), statistics.median(f for _, f in found), rates


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sasl_cost", description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    args = parser.parse_args()
    print(f"{args.messages:,} messages of {len(VALUE)} bytes, {args.runs} runs, median:")
    baseline = None
    for mode in args.modes:
        rate, first, rates = measure(mode, args.messages, args.runs)
        baseline = baseline or rate
        each = ", ".join(f"{r:,.0f}" for r in rates)
        print(
            f"  {MODES[mode][0]:<22}{rate:>9,.0f} events/s ({rate / baseline:4.0%})"
            f"   first ack after {first * 1000:,.0f} ms   runs: {each}"
        )


if __name__ == "__main__":
    main()
