"""The CloudEvents 1.0 Kafka protocol binding, both ways.

Outgoing events use binary mode: attributes in `ce_*` headers, the data as
the JSON value. Incoming events may use binary or structured mode (a JSON
envelope with `specversion`), so any Kafka client can send us a status change.
"""

from __future__ import annotations

import msgspec

from app.db.outbox import OutboxMessage
from app.domain.events import Event
from app.domain.origin import Origin
from app.events.codec import encode, rfc3339, untyped_decoder

SPEC_VERSION = "1.0"
JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
CORRELATION_HEADER = "ce_correlationid"


class PoisonMessage(Exception):
    """The message cannot be understood as an event; it belongs in the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IncomingEvent(msgspec.Struct, frozen=True):
    id: str
    source: str
    type: str
    subject: str | None
    data: object  # decoded JSON, numbers as Decimal
    correlation_id: str | None = None
    traceparent: str | None = None


def to_outbox(event: Event, *, topic: str, source: str, origin: Origin) -> OutboxMessage:
    headers = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(event.id),
        "ce_source": source,
        "ce_type": event.type.value,
        "ce_time": rfc3339(event.time),
        "ce_subject": str(event.order_id),
        "content-type": JSON,
    }
    if origin.correlation_id:
        headers[CORRELATION_HEADER] = origin.correlation_id
    if origin.traceparent:
        headers["traceparent"] = origin.traceparent
    if origin.tracestate:
        headers["tracestate"] = origin.tracestate
    return OutboxMessage(
        id=event.id,
        topic=topic,
        key=str(event.customer_id),
        event_type=event.type.value,
        subject=str(event.order_id),
        payload=encode(event.data),
        headers=headers,
    )


class _Envelope(msgspec.Struct, frozen=True):
    """Structured mode: the whole event as one JSON object."""

    specversion: str
    id: str
    source: str
    type: str
    subject: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")  # kept undecoded until we know the type
    correlationid: str | None = None
    traceparent: str | None = None


def from_kafka(value: bytes | None, headers: list[tuple[str, bytes]] | None) -> IncomingEvent:
    """Read a Kafka record as a CloudEvent, or raise PoisonMessage saying why not."""
    attributes = _decode_headers(headers or [])
    if "ce_specversion" in attributes:
        return _binary(value, attributes)
    if attributes.get("content-type", "").startswith(STRUCTURED) or _looks_structured(value):
        return _structured(value, attributes)
    raise PoisonMessage("not a CloudEvent: no ce_specversion header and no structured envelope")


def _binary(value: bytes | None, attributes: dict[str, str]) -> IncomingEvent:
    if attributes["ce_specversion"] != SPEC_VERSION:
        raise PoisonMessage(f"unsupported CloudEvents specversion {attributes['ce_specversion']!r}")
    missing = [name for name in ("ce_id", "ce_source", "ce_type") if not attributes.get(name)]
    if missing:
        raise PoisonMessage(f"missing CloudEvents header(s): {', '.join(missing)}")
    return IncomingEvent(
        id=attributes["ce_id"],
        source=attributes["ce_source"],
        type=attributes["ce_type"],
        subject=attributes.get("ce_subject"),
        data=_decode_json(value) if value else None,
        correlation_id=attributes.get(CORRELATION_HEADER),
        traceparent=attributes.get("traceparent"),
    )


def _structured(value: bytes | None, attributes: dict[str, str]) -> IncomingEvent:
    try:
        envelope = msgspec.json.decode(value or b"", type=_Envelope)
    except msgspec.ValidationError as exc:
        raise PoisonMessage(f"invalid structured CloudEvent: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise PoisonMessage(f"value is not JSON: {exc}") from exc
    if envelope.specversion != SPEC_VERSION:
        raise PoisonMessage(f"unsupported CloudEvents specversion {envelope.specversion!r}")
    return IncomingEvent(
        id=envelope.id,
        source=envelope.source,
        type=envelope.type,
        subject=envelope.subject,
        data=_decode_json(bytes(envelope.data)),
        correlation_id=envelope.correlationid or attributes.get(CORRELATION_HEADER),
        traceparent=envelope.traceparent or attributes.get("traceparent"),
    )


def _looks_structured(value: bytes | None) -> bool:
    return value is not None and value.lstrip()[:1] == b"{" and b'"specversion"' in value


def _decode_headers(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    decoded: dict[str, str] = {}
    for name, raw in headers:
        try:
            decoded[name.lower()] = raw.decode() if raw is not None else ""
        except UnicodeDecodeError as exc:
            raise PoisonMessage(f"header {name!r} is not UTF-8") from exc
    return decoded


def _decode_json(value: bytes) -> object:
    try:
        return untyped_decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise PoisonMessage(f"value is not JSON: {exc}") from exc
