"""`python -m consumer`: apply order events until SIGTERM/SIGINT.
`python -m consumer replay-dlq`: send dead letters back (see consumer/replay.py)."""

from __future__ import annotations

import asyncio
import logging
import sys
from decimal import Decimal

from app import config
from app.db.engine import create_engine, libpq_url
from app.db.wakeup import OutboxBell
from app.process import run_worker
from app.services.orders import Emitter
from consumer import replay
from consumer.handler import EventHandler
from consumer.kafka_io import KafkaDeadLetters, KafkaEventSource
from consumer.loop import ConsumerLoop
from consumer.trust import TopicTrust

log = logging.getLogger("consumer")


async def serve(settings: config.Settings, stop: asyncio.Event) -> int:
    kafka = settings.kafka
    engine = create_engine(settings.database, application_name="orders-consumer")
    bell = OutboxBell(libpq_url(settings.database.url), settings.database, "orders-consumer")
    emitter = Emitter(kafka.source, kafka.topic_for, bell)
    trust = TopicTrust.of(kafka)
    handler = EventHandler(engine, emitter, Decimal(settings.consumer.max_order_total), trust)
    client = config.kafka_client_config(kafka)
    source = KafkaEventSource(
        client,
        kafka.group_id,
        kafka.consumed_topics,
        session_timeout_ms=settings.consumer.session_timeout_ms,
    )
    dead_letters = KafkaDeadLetters(client, kafka.dlq_topic, kafka.group_id)
    consumer = ConsumerLoop(
        source,
        dead_letters,
        handler,
        batch_size=settings.consumer.batch_size,
        max_attempts=settings.consumer.max_attempts,
        stop=stop,
    )
    log.info("consumer started", extra={"topics": kafka.consumed_topics, "group": kafka.group_id})
    try:
        await consumer.run()
    finally:
        await bell.close()
        await engine.dispose()
    log.info("consumer stopped")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["replay-dlq"]:
        return replay.main(argv[1:])
    return run_worker("orders-consumer", serve, metrics_port=lambda s: s.consumer.metrics_port)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
