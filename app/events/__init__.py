"""Events on the wire: CloudEvents 1.0 in Kafka binary mode, JSON data."""
