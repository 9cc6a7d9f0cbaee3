"""What a dead letter carries: the original headers plus why and where it came from."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumer.kafka_io import KafkaDeadLetters, Record, dead_letter_headers


def record(headers: list[tuple[str, bytes]]) -> Record:
    return Record("orders", 3, 1234, b"customer", b"{}", headers)


def test_original_headers_are_kept_in_order() -> None:
    original = [("ce_id", b"evt-1"), ("ce_type", b"order.shipped"), ("traceparent", b"00-ab")]
    headers = dead_letter_headers(record(original), "bad", None, "order-service")
    assert headers[: len(original)] == original


def test_where_and_why_are_added() -> None:
    headers = dict(
        dead_letter_headers(record([]), "failed 3 times", RuntimeError("boom"), "order-service")
    )
    assert headers["dlq_reason"] == "failed 3 times"
    assert headers["dlq_exception"] == "RuntimeError: boom"
    assert headers["dlq_original_topic"] == "orders"
    assert headers["dlq_original_partition"] == "3"
    assert headers["dlq_original_offset"] == "1234"
    assert headers["dlq_consumer_group"] == "order-service"


def test_failure_time_is_rfc3339_utc() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    failed_at = dict(dead_letter_headers(record([]), "bad", None, "g"))["dlq_failed_at"]
    assert isinstance(failed_at, str)
    assert failed_at.endswith("Z")
    assert datetime.fromisoformat(failed_at) >= before


def test_headers_of_an_earlier_dead_lettering_are_replaced_not_repeated() -> None:
    original = [
        ("ce_id", b"evt-1"),
        ("dlq_reason", b"old reason"),
        ("dlq_original_offset", b"7"),
    ]
    headers = dead_letter_headers(record(original), "new reason", None, "g")
    names = [name for name, _ in headers]
    assert names.count("dlq_reason") == 1
    assert names.count("dlq_original_offset") == 1
    assert dict(headers)["dlq_reason"] == "new reason"
    assert dict(headers)["dlq_original_offset"] == "1234"
    assert ("ce_id", b"evt-1") in headers


def test_without_an_exception_the_exception_header_is_empty() -> None:
    assert dict(dead_letter_headers(record([]), "bad", None, "g"))["dlq_exception"] == ""


def test_long_reason_is_cut_to_a_header_sized_value() -> None:
    reason = dict(dead_letter_headers(record([]), "x" * 10_000, None, "g"))["dlq_reason"]
    assert reason == "x" * 4000


class SizeLimitedProducer:
    """Stands in for confluent-kafka's Producer: refuses what is over `limit` bytes, as a
    broker or the client's message.max.bytes does; accepts and remembers the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[bytes | None, list[tuple[str, str | bytes | None]]]] = []

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        *,
        headers: list[tuple[str, str | bytes | None]],
        on_delivery: Callable[[KafkaError | None, object], None],
    ) -> None:
        size = len(value or b"") + sum(len(n) + len(v or b"") for n, v in headers)
        if size > self.limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.sent.append((value, headers))
        on_delivery(None, None)

    def flush(self, timeout: float) -> int:
        return 0


@pytest.mark.anyio
async def test_a_letter_too_large_for_the_dlq_goes_without_its_value_and_long_headers() -> None:
    letters = KafkaDeadLetters({"bootstrap.servers": "127.0.0.1:9"}, "orders.dlq", "order-service")
    producer = SizeLimitedProducer(limit=10_000)
    letters._producer = producer  # type: ignore[assignment]
    huge = Record(
        "orders", 3, 1234, b"customer", b"x" * 900_000, [("ce_id", b"e"), ("big", b"y" * 5000)]
    )
    await letters.send(huge, "value of 900000 bytes exceeds …", None)
    [(value, headers)] = producer.sent
    named = dict(headers)
    assert value is None
    assert named["ce_id"] == b"e" and "big" not in named
    assert named["dlq_original_offset"] == "1234"
    assert "value (900000 bytes) and 1 header(s)" in str(named["dlq_omitted"])


@pytest.mark.anyio
async def test_a_letter_that_fits_goes_whole_and_other_errors_are_raised() -> None:
    letters = KafkaDeadLetters({"bootstrap.servers": "127.0.0.1:9"}, "orders.dlq", "order-service")
    producer = SizeLimitedProducer(limit=10_000)
    letters._producer = producer  # type: ignore[assignment]
    await letters.send(record([("ce_id", b"e")]), "bad", None)
    assert producer.sent[0][0] == b"{}"
    assert "dlq_omitted" not in dict(producer.sent[0][1])
    producer.limit = -1  # even the slim letter is refused: raised, so the loop retries
    with pytest.raises(KafkaException):
        await letters.send(record([]), "bad", None)
