"""`python -m consumer replay-dlq`: send dead letters back to the topic they came from.

Once the cause is fixed (a bug deployed away, a missing order created), the
DLQ is replayed: each message goes back with its original key, value and
headers (our `dlq_*` headers removed), and the replay group's offsets move past
it only after Kafka has acknowledged the copy. Replayed events are deduplicated
by the consumer like any other, so replaying twice is harmless.
"""

from __future__ import annotations

import argparse

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from app import config
from app.process import settings_or_exit
from consumer.kafka_io import DLQ_HEADER_PREFIX, header_pairs


def replay(
    settings: config.KafkaSettings, *, group: str, limit: int, dry_run: bool
) -> tuple[int, int]:
    """Replay up to `limit` letters; (replayed, refused)."""
    client = config.kafka_client_config(settings)
    consumer = Consumer(
        {
            **client,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    producer = Producer({**client, "enable.idempotence": True, "acks": "all"})
    consumer.subscribe([settings.dlq_topic])
    allowed = set(settings.consumed_topics)
    replayed = refused = 0
    try:
        for message in _until_caught_up(consumer, limit):
            target = _header(message, "dlq_original_topic")
            if target not in allowed:
                refused += 1
                print(
                    f"refusing offset {message.offset()}: its topic {target!r} is not one the "
                    f"consumer reads ({', '.join(sorted(allowed))})"
                )
                if not dry_run:
                    consumer.commit(message=message, asynchronous=False)
                continue
            kept: list[tuple[str, str | bytes | None]] = [
                (k, v) for k, v in header_pairs(message) if not k.startswith(DLQ_HEADER_PREFIX)
            ]
            verb = "would replay" if dry_run else "replaying"
            print(f"{verb} offset {message.offset()} → {target}: {_header(message, 'dlq_reason')}")
            if not dry_run:
                producer.produce(target, message.value(), message.key(), headers=kept)
                if producer.flush(30) != 0:
                    raise KafkaException(
                        KafkaError(KafkaError._MSG_TIMED_OUT, "replay not acknowledged")
                    )
                consumer.commit(message=message, asynchronous=False)
            replayed += 1
    finally:
        consumer.close()
    print(
        f"{replayed} message(s) {'to replay' if dry_run else 'replayed'} from {settings.dlq_topic}"
        + (f"; {refused} refused" if refused else "")
    )
    return replayed, refused


def _until_caught_up(consumer: Consumer, limit: int) -> list[Message]:
    """Read the DLQ up to its end as it is now (bounded by `limit`)."""
    found: list[Message] = []
    idle_polls = 0
    at_end: set[int] = set()
    while len(found) < limit and idle_polls < 20:
        message = consumer.poll(0.5)
        if message is None:
            idle_polls += 1
            if at_end and at_end == {p.partition for p in consumer.assignment()}:
                break
            continue
        idle_polls = 0
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition() or 0)
                if at_end == {p.partition for p in consumer.assignment()}:
                    break
                continue
            raise KafkaException(error)
        found.append(message)
    return found


def _header(message: Message, name: str) -> str | None:
    for key, value in header_pairs(message):
        if key == name:
            return value.decode(errors="replace")[:300]
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consumer replay-dlq", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--limit", type=int, default=10_000, help="replay at most this many messages"
    )
    parser.add_argument(
        "--group", default=None, help="consumer group that remembers replay progress"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    args = parser.parse_args(argv)
    settings = settings_or_exit("orders-replay-dlq").kafka
    group = args.group or f"{settings.group_id}-dlq-replay"
    _, refused = replay(settings, group=group, limit=args.limit, dry_run=args.dry_run)
    return 1 if refused else 0
