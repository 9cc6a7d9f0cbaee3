"""Request bodies in, response bodies out, decoded and encoded strictly.

Bodies are decoded by msgspec straight from the raw bytes against the target
type, so a JSON number becomes an exact Decimal (never a float on the way) and a
wrong JSON type is an error, not a coercion. msgspec itself accepts a *string*
for a Decimal, so money fields get one more check: they must be JSON numbers.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from app.domain.errors import FieldError, InvalidInput
from app.domain.order import NewOrder
from app.events.codec import encoder

T = TypeVar("T")


class MalformedJson(Exception):
    """The body is not JSON at all (HTTP 400, where a wrong shape is 422)."""


class UnsupportedMediaType(Exception):
    """A body was sent, but not as JSON (HTTP 415)."""


def is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


class _PriceProbe(msgspec.Struct):
    price: msgspec.Raw


class _OrderProbe(msgspec.Struct):
    items: list[_PriceProbe]


# msgspec's messages are precise but quote regexes; say what the rule means instead.
_PATTERN_HINTS = {
    "email": "must be a valid email address",
    "currency": "must be a 3-letter ISO 4217 currency code, like USD",
    "country": "must be a 2-letter ISO 3166 country code, like BY",
}
_AT = re.compile(r" - at (?:`key` in )?`\$(?P<path>[^`]*)`$")
_NAMED_FIELD = re.compile(r"^Object (missing required|contains unknown) field `(?P<name>[^`]+)`")


def decode(body: bytes, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        _raise_if_malformed(body)  # decoding stops at the first error, which may come first
        raise InvalidInput([field_error(str(exc))]) from exc
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from exc


def _raise_if_malformed(body: bytes) -> None:
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from exc


def decode_new_order(body: bytes) -> NewOrder:
    order = decode(body, NewOrder)
    probe = msgspec.json.decode(body, type=_OrderProbe)
    errors = [
        FieldError(f"items[{index}].price", "must be a JSON number, not a string")
        for index, item in enumerate(probe.items)
        if bytes(item.price).startswith(b'"')
    ]
    if errors:
        raise InvalidInput(errors)
    return order


def field_error(message: str) -> FieldError:
    """Turn msgspec's `Expected … - at `$.items[0].price`` into a field and a sentence."""
    path = ""
    if found := _AT.search(message):
        path = found["path"].lstrip(".")
        message = message[: found.start()]
    if named := _NAMED_FIELD.match(message):
        path = f"{path}.{named['name']}".lstrip(".")
        message = "is required" if "missing" in message else "is not a field of this object"
    if "matching regex" in message:
        message = _PATTERN_HINTS.get(path.rsplit(".", 1)[-1], "has the wrong format")
    return FieldError(path or "body", message)


def encode(value: object) -> bytes:
    return encoder.encode(value)
