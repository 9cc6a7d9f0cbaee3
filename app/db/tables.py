"""Table shapes for building queries. The schema itself is alembic's (see migrations);
tests/integration/test_schema.py checks that these columns match the migrated database."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    FetchedValue,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()


def _timestamp(name: str, *, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


orders = Table(
    "orders",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("email", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("total_amount", Numeric(asdecimal=True), nullable=False),
    Column("currency", Text, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("shipping_address", JSONB),
    Column("billing_address", JSONB),
    Column("version", Integer, nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
)

order_items = Table(
    "order_items",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=FetchedValue()),
    Column("order_id", Uuid, nullable=False),
    Column("position", Integer, nullable=False),
    Column("product_id", Uuid, nullable=False),
    Column("name", Text, nullable=False),
    Column("price", Numeric(asdecimal=True), nullable=False),
    Column("quantity", Integer, nullable=False),
)

order_status_history = Table(
    "order_status_history",
    metadata,
    Column("id", BigInteger, primary_key=True, server_default=FetchedValue()),
    Column("order_id", Uuid, nullable=False),
    Column("version", Integer, nullable=False),
    Column("from_status", Text),
    Column("to_status", Text, nullable=False),
    Column("cause", Text, nullable=False),
    Column("cause_id", Text),
    Column("reason", Text),
    _timestamp("changed_at"),
    Column("actor", Text),  # migration 0003
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("shard", SmallInteger, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("headers", JSONB, nullable=False),
    _timestamp("created_at"),
    _timestamp("published_at", nullable=True),
    Column("attempts", Integer, nullable=False),
    _timestamp("last_attempt_at", nullable=True),
    Column("last_error", Text),
    _timestamp("parked_at", nullable=True),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("source", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("event_type", Text, nullable=False),
    Column("order_id", Uuid),
    Column("outcome", Text, nullable=False),
    Column("detail", Text),
    Column("topic", Text),
    Column("kafka_partition", Integer),
    Column("kafka_offset", BigInteger),
    _timestamp("processed_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", Text, primary_key=True),  # migration 0003: keys are per principal
    Column("key", Text, primary_key=True),
    Column("request_hash", LargeBinary, nullable=False),
    Column("order_id", Uuid, nullable=False),
    Column("response_status", SmallInteger, nullable=False),
    Column("response_body", LargeBinary, nullable=False),
    _timestamp("created_at"),
    _timestamp("expires_at"),
)
