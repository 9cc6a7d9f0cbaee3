"""The relay: publishes outbox rows to Kafka, in commit order per key, at least once."""
