"""The CloudEvents 1.0 Kafka protocol binding, both ways.

Outgoing events use binary mode: attributes in `ce_*` headers, the data as
the JSON value. Incoming events may use binary or structured mode (a JSON
envelope with `specversion`), so any Kafka client can send us a status change.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import Meta

from app.domain.events import Event
from app.domain.origin import Origin
from app.events.codec import depth_over, encode, rfc3339, untyped_decoder
from app.events.message import OutboxMessage

SPEC_VERSION = "1.0"
JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
CORRELATION_HEADER = "ce_correlationid"

# What a record may hold before any parser sees it. A value is at most Kafka's default
# message size (an order.created is about as large as its HTTP body); JSON nested deeper
# than MAX_DEPTH is refused before msgspec's recursive decoder could raise RecursionError
# (our deepest event, order.created, nests 4 levels). Headers are bounded in count and
# size, and each attribute we store or log (ce_id goes into a primary key) in length.
MAX_VALUE_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024
ATTRIBUTE_LIMITS = {
    "ce_id": 128,  # a UUID is 36; CloudEvents allows any string, we allow a short one
    "ce_source": 256,
    "ce_type": 128,
    "ce_subject": 128,
    "ce_specversion": 16,
    CORRELATION_HEADER: 128,
    "traceparent": 128,  # W3C: 55 characters
}
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Id = Annotated[str, Meta(min_length=1, max_length=ATTRIBUTE_LIMITS["ce_id"], pattern=_PRINTABLE)]
Source = Annotated[
    str, Meta(min_length=1, max_length=ATTRIBUTE_LIMITS["ce_source"], pattern=_PRINTABLE)
]
Type = Annotated[
    str, Meta(min_length=1, max_length=ATTRIBUTE_LIMITS["ce_type"], pattern=_PRINTABLE)
]
Short = Annotated[str, Meta(max_length=128, pattern=_PRINTABLE)]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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

    specversion: Short
    id: Id
    source: Source
    type: Type
    subject: Short | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")  # kept undecoded until we know the type
    correlationid: Short | None = None
    traceparent: Short | None = None


def from_kafka(value: bytes | None, headers: list[tuple[str, bytes]] | None) -> IncomingEvent:
    """Read a Kafka record as a CloudEvent, or raise PoisonMessage saying why not.

    Sizes and depth are checked before anything is decoded: no value makes a parser
    recurse without bound, and no attribute is longer than ATTRIBUTE_LIMITS allows.
    """
    check_value(value)
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
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
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


def check_value(value: bytes | None) -> None:
    """Raise PoisonMessage if the value is too large or nested too deeply to decode."""
    if value is None:
        return
    if len(value) > MAX_VALUE_BYTES:
        raise PoisonMessage(f"value of {len(value)} bytes exceeds {MAX_VALUE_BYTES}")
    depth = depth_over(value, MAX_DEPTH)
    if depth is not None:
        raise PoisonMessage(f"value nested {depth} levels deep exceeds {MAX_DEPTH}")


def _decode_headers(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    if len(headers) > MAX_HEADERS:
        raise PoisonMessage(f"{len(headers)} headers exceed {MAX_HEADERS}")
    size = sum(len(name) + len(raw or b"") for name, raw in headers)
    if size > MAX_HEADER_BYTES:
        raise PoisonMessage(f"headers of {size} bytes exceed {MAX_HEADER_BYTES}")
    decoded: dict[str, str] = {}
    for name, raw in headers:
        try:
            decoded[name.lower()] = raw.decode() if raw is not None else ""
        except UnicodeDecodeError as exc:
            raise PoisonMessage(f"header {name[:64]!r} is not UTF-8") from exc
    for name, limit in ATTRIBUTE_LIMITS.items():
        text = decoded.get(name, "")
        if len(text) > limit:
            raise PoisonMessage(f"header {name} of {len(text)} characters exceeds {limit}")
        if _CONTROL.search(text):
            raise PoisonMessage(f"header {name} holds control characters")
    return decoded


def _decode_json(value: bytes) -> object:
    try:
        return untyped_decoder.decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # invalid UTF-8 in a string
        raise PoisonMessage(f"value is not JSON: {exc}") from exc
