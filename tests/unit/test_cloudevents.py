"""CloudEvents on Kafka: binary mode out, binary or structured mode in, poison refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest

from app.domain import examples
from app.domain.events import Event, order_created, status_changed
from app.domain.order import OrderState
from app.domain.origin import Origin
from app.domain.status import Status
from app.events.cloudevents import (
    MAX_DEPTH,
    MAX_VALUE_BYTES,
    PoisonMessage,
    from_kafka,
    to_outbox,
)
from app.events.codec import depth_over, json_depth

EVENT_ID = UUID("0b7e3c1a-9a51-4a55-8a57-2f1c9c0f7a01")
ORDER_ID = UUID("5f0c8a8e-7a43-4f8e-9d0e-0d6a3b9e2c11")
CUSTOMER_ID = examples.CUSTOMER_ID
SOURCE = "/order-service"
# 03:04:05 at UTC+3 is 00:04:05Z.
MINSK_TIME = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=3)))


def created_event() -> Event:
    """`order.created` for the example order, created at MINSK_TIME."""
    return order_created(EVENT_ID, examples.stored(ORDER_ID, MINSK_TIME))


def binary_headers(**overrides: str | None) -> list[tuple[str, bytes]]:
    attributes: dict[str, str | None] = {
        "ce_specversion": "1.0",
        "ce_id": "evt-1",
        "ce_source": "/warehouse",
        "ce_type": "order.shipped",
        "ce_subject": str(ORDER_ID),
        "content-type": "application/json",
        **overrides,
    }
    return [(name, value.encode()) for name, value in attributes.items() if value is not None]


def envelope(**overrides: object) -> bytes:
    body: dict[str, object] = {
        "specversion": "1.0",
        "id": "evt-2",
        "source": "/warehouse",
        "type": "order.shipped",
        "subject": str(ORDER_ID),
        **overrides,
    }
    return json.dumps(body).encode()


def poison_reason(value: bytes | None, headers: list[tuple[str, bytes]] | None) -> str:
    with pytest.raises(PoisonMessage) as poison:
        from_kafka(value, headers)
    return poison.value.reason


# --- to_outbox ---------------------------------------------------------------


def test_outbox_message_carries_the_binary_mode_headers() -> None:
    message = to_outbox(created_event(), topic="orders", source=SOURCE, origin=Origin("api"))
    assert message.headers == {
        "ce_specversion": "1.0",
        "ce_id": str(EVENT_ID),
        "ce_source": SOURCE,
        "ce_type": "order.created",
        "ce_time": "2025-01-02T00:04:05.123456Z",
        "ce_subject": str(ORDER_ID),
        "content-type": "application/json",
    }


def test_trace_and_correlation_headers_are_added_when_given() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    origin = Origin("api", correlation_id="req-42", traceparent=traceparent)
    headers = to_outbox(created_event(), topic="orders", source=SOURCE, origin=origin).headers
    assert headers["traceparent"] == traceparent
    assert headers["ce_correlationid"] == "req-42"


def test_ce_time_is_rfc3339_utc_and_the_same_instant() -> None:
    message = to_outbox(created_event(), topic="orders", source=SOURCE, origin=Origin("api"))
    ce_time = message.headers["ce_time"]
    assert ce_time.endswith("Z")
    assert datetime.fromisoformat(ce_time).astimezone(UTC) == MINSK_TIME


def test_outbox_message_is_keyed_by_customer_and_routed_to_the_given_topic() -> None:
    message = to_outbox(
        created_event(), topic="kafka.orders.created", source=SOURCE, origin=Origin("api")
    )
    assert (message.id, message.topic, message.key) == (
        EVENT_ID,
        "kafka.orders.created",
        str(CUSTOMER_ID),
    )
    assert (message.event_type, message.subject) == ("order.created", str(ORDER_ID))


def test_payload_carries_money_as_exact_json_numbers() -> None:
    payload = to_outbox(
        created_event(), topic="orders", source=SOURCE, origin=Origin("api")
    ).payload
    data = json.loads(payload, parse_float=Decimal)
    assert data["total_amount"] == Decimal("149.97")
    assert data["items"][0]["price"] == Decimal("49.99")
    assert b'"total_amount":149.97' in payload


def test_payload_of_a_status_change_names_both_statuses() -> None:
    state = OrderState(ORDER_ID, CUSTOMER_ID, Status.SHIPPED, 3, MINSK_TIME)
    event = status_changed(EVENT_ID, state, Status.CONFIRMED, "left the warehouse")
    message = to_outbox(event, topic="orders", source=SOURCE, origin=Origin("event"))
    data = json.loads(message.payload)
    assert message.headers["ce_type"] == "order.shipped"
    assert (data["status"], data["previous_status"], data["version"]) == ("shipped", "confirmed", 3)
    assert data["reason"] == "left the warehouse"


def test_what_we_publish_reads_back_as_the_same_event() -> None:
    origin = Origin("api", correlation_id="req-42")
    message = to_outbox(created_event(), topic="orders", source=SOURCE, origin=origin)
    headers = [(name, value.encode()) for name, value in message.headers.items()]
    incoming = from_kafka(message.payload, headers)
    assert (incoming.id, incoming.source, incoming.type, incoming.subject) == (
        str(EVENT_ID),
        SOURCE,
        "order.created",
        str(ORDER_ID),
    )
    assert incoming.correlation_id == "req-42"
    assert isinstance(incoming.data, dict)
    assert incoming.data["total_amount"] == Decimal("149.97")


# --- from_kafka --------------------------------------------------------------


def test_binary_mode_event_is_read_from_headers_and_value() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = binary_headers(ce_correlationid="corr-1", traceparent=traceparent)
    incoming = from_kafka(b'{"order_id": "x", "weight": 1.25}', headers)
    assert (incoming.id, incoming.source, incoming.type) == ("evt-1", "/warehouse", "order.shipped")
    assert incoming.subject == str(ORDER_ID)
    assert incoming.data == {"order_id": "x", "weight": Decimal("1.25")}
    assert (incoming.correlation_id, incoming.traceparent) == ("corr-1", traceparent)


def test_binary_mode_event_without_a_value_has_no_data() -> None:
    assert from_kafka(None, binary_headers()).data is None


STATUS_DATA = {"order_id": str(ORDER_ID), "weight": 1.25}


@pytest.mark.parametrize(
    "content_type", ["application/cloudevents+json", "application/cloudevents+json; charset=utf-8"]
)
def test_structured_mode_event_is_read_from_the_envelope(content_type: str) -> None:
    incoming = from_kafka(
        envelope(correlationid="corr-2"), [("content-type", content_type.encode())]
    )
    assert (incoming.id, incoming.source, incoming.type) == ("evt-2", "/warehouse", "order.shipped")
    assert (incoming.subject, incoming.correlation_id) == (str(ORDER_ID), "corr-2")
    assert incoming.data is None


def test_json_object_with_specversion_is_structured_even_without_content_type() -> None:
    incoming = from_kafka(envelope(), None)
    assert (incoming.id, incoming.type) == ("evt-2", "order.shipped")


def test_structured_mode_event_data_is_decoded_with_exact_numbers() -> None:
    value = envelope(data=STATUS_DATA)
    incoming = from_kafka(value, [("content-type", b"application/cloudevents+json")])
    assert incoming.data == {"order_id": str(ORDER_ID), "weight": Decimal("1.25")}


def test_structured_mode_event_with_data_is_detected_without_content_type() -> None:
    incoming = from_kafka(envelope(data=STATUS_DATA), None)
    assert incoming.data == {"order_id": str(ORDER_ID), "weight": Decimal("1.25")}


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"{}", binary_headers(ce_id=None), "ce_id"),
        (b"{}", binary_headers(ce_type=None, ce_source=None), "ce_source, ce_type"),
        (b"{}", binary_headers(ce_specversion="0.3"), "specversion '0.3'"),
        (b"not json", binary_headers(), "value is not JSON"),
        (b"{}", [*binary_headers(), ("ce_source", b"\xff\xfe")], "'ce_source' is not UTF-8"),
        (b'{"order_id": "x", "status": "shipped"}', [], "not a CloudEvent"),
        (b'{"order_id": "x"}', [("content-type", b"application/json")], "not a CloudEvent"),
        (None, None, "not a CloudEvent"),
        (envelope(specversion="0.3"), [], "specversion '0.3'"),
        (
            b'{"specversion": "1.0", "source": "s", "type": "t"}',
            [],
            "invalid structured CloudEvent",
        ),
        (b"garbage", [("content-type", b"application/cloudevents+json")], "value is not JSON"),
    ],
    ids=[
        "missing-ce_id",
        "missing-source-and-type",
        "binary-specversion",
        "binary-not-json",
        "header-not-utf8",
        "plain-json",
        "plain-json-with-content-type",
        "nothing",
        "structured-specversion",
        "structured-missing-id",
        "structured-not-json",
    ],
)
def test_message_that_is_not_a_readable_cloudevent_is_poison(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, reason: str
) -> None:
    assert reason in poison_reason(value, headers)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (nested(2_000), binary_headers(), "nested 2000 levels deep exceeds 32"),
        (nested(100_000), binary_headers(), "nested 100000 levels deep exceeds 32"),
        (b'{"data": ' + nested(5_000) + b', "specversion": "1.0"}', [], "levels deep"),
        (b"\xff\xfe{}", binary_headers(), "value is not JSON"),
        (b'{"reason": "\xff"}', binary_headers(), "value is not JSON"),
        (b'{"specversion": "1.0", "id": "\xff"}', [], "value is not JSON"),
        (b"0" * (MAX_VALUE_BYTES + 1), binary_headers(), f"exceeds {MAX_VALUE_BYTES}"),
        (b"{}", binary_headers(ce_id="a" * 8192), "ce_id of 8192 characters exceeds 128"),
        (b"{}", binary_headers(ce_source="/" * 257), "ce_source of 257 characters"),
        (b"{}", binary_headers(ce_subject="x\ny"), "ce_subject holds control characters"),
        (b"{}", [*binary_headers(), ("junk", b"x" * 20_000)], "headers of 20"),
        (b"{}", [*binary_headers(), *[("h", b"")] * 100], "headers exceed 64"),
        (envelope(id="a" * 8192), [], "invalid structured CloudEvent"),
    ],
    ids=[
        "nested-2000",
        "nested-100000",
        "structured-nested-data",
        "value-not-utf8",
        "string-not-utf8",
        "structured-not-utf8",
        "value-too-large",
        "ce_id-8192",
        "long-source",
        "control-character",
        "huge-header",
        "many-headers",
        "structured-long-id",
    ],
)
def test_what_would_break_a_parser_or_an_index_is_poison_before_decoding(
    value: bytes, headers: list[tuple[str, bytes]], reason: str
) -> None:
    assert reason in poison_reason(value, headers)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'["[[[[", "\\"[[[", {"}": "]]]]"}]', 2),  # brackets inside strings do not count
        (nested(MAX_DEPTH), MAX_DEPTH),
    ],
)
def test_json_depth_counts_nesting_outside_strings(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


@pytest.mark.parametrize(
    ("text", "limit", "over"),
    [
        (b'{"a": [1, {"b": []}]}', 4, None),  # four openers: cleared without a pass
        (b'{"a": [1, {"b": []}]}', 3, 4),
        (b'["[[[[[[[[", {"k": "{{{{{{{{"}]', 2, None),  # many openers, all but 2 in strings
        (nested(MAX_DEPTH + 1), MAX_DEPTH, MAX_DEPTH + 1),  # hostile: refused with its depth
        (b"[" * 10_000, MAX_DEPTH, 10_000),  # unclosed: still counted, never parsed
    ],
)
def test_depth_over_reports_only_a_depth_beyond_the_limit(
    text: bytes, limit: int, over: int | None
) -> None:
    assert depth_over(text, limit) == over


def test_a_json_array_and_our_deepest_event_are_read() -> None:
    assert from_kafka(b"[1, 2]", binary_headers()).data == [1, 2]
    message = to_outbox(created_event(), topic="orders", source=SOURCE, origin=Origin("api"))
    assert json_depth(message.payload) <= MAX_DEPTH
