"""What an event is on the wire: one Kafka record, ready to send.

`OutboxMessage` knows no table: the API and the consumer build one
(`app.events.cloudevents.to_outbox`), `app.db.outbox` stores and claims it, and
the relay's publishers send it. Invariant: `payload` and `headers` are exactly
what Kafka will carry (the value byte for byte; the CloudEvents attributes as
`ce_*` headers), and `id` is the event's `ce_id`.
"""

from __future__ import annotations

from uuid import UUID

import msgspec


class OutboxMessage(msgspec.Struct, frozen=True):
    """One event: where it goes (topic, key) and exactly what is sent."""

    id: UUID
    topic: str
    key: str  # the Kafka key: the order's customer, so a customer's events keep their order
    event_type: str
    subject: str
    payload: bytes  # the JSON value, byte for byte as Kafka will carry it
    headers: dict[str, str]
