"""What a dead letter carries: the original headers plus why and where it came from."""

from __future__ import annotations

from datetime import UTC, datetime

from consumer.kafka_io import Record, dead_letter_headers


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
