"""Request bodies in, response bodies out, decoded and encoded strictly.

Responses are typed structs (`OrderEnvelope`, `OrderPage`, `OrderHistory`), encoded by
`JsonResponse` with the events' encoder (money as exact JSON numbers).

Request bodies are decoded by msgspec straight from the raw bytes against the target
type, so a JSON number becomes an exact Decimal (never a float on the way) and a
wrong JSON type is an error, not a coercion. msgspec itself accepts a *string*
for a Decimal, so money fields get one more check: they must be JSON numbers.
A name given twice in one object is refused too: parsers disagree on which one
wins, and an order must mean the same thing to everyone who reads it. Nesting is
bounded (MAX_DEPTH) by a flat scan before any parser, recursive or not, sees the body.
Litestar's default path would decode JSON to Python objects first (numbers become
floats) and convert afterwards: `StrictBody` makes it use this decoder instead.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Response
from litestar.dto import MsgspecDTO
from litestar.openapi.spec import Reference, Schema
from litestar.serialization import default_serializer
from litestar.types import Serializer
from litestar.typing import FieldDefinition

from app.domain.errors import FieldError, InvalidInput
from app.domain.order import NO_NUL, Order, OrderRequest, Transition
from app.events.codec import depth_over, encoder

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)


class MalformedJson(Exception):
    """The body is not JSON at all (HTTP 400, where a wrong shape is 422)."""


class UnsupportedMediaType(Exception):
    """A body was sent, but not as JSON (HTTP 415)."""


PARAMETERS_DETAIL = "A query parameter is not valid."


class InvalidParameter(InvalidInput):
    """A query parameter breaks a rule (HTTP 400; a body or a header that does is 422)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors, PARAMETERS_DETAIL)


class CancelRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The optional body of a cancel request."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=NO_NUL)] | None = None


CREATED = "Order created successfully"
CANCELLED = "Order cancelled"


class OrderEnvelope(msgspec.Struct, frozen=True, omit_defaults=True):
    order: Order
    message: str | None = None


class OrderPage(msgspec.Struct, frozen=True):
    orders: list[Order]
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last page


class OrderHistory(msgspec.Struct, frozen=True):
    order_id: UUID
    history: list[Transition]


def is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


# msgspec's messages are precise but quote regexes; say what the rule means instead.
_PATTERN_HINTS = {
    "email": "must be a valid email address",
    "currency": "must be a 3-letter ISO 4217 currency code, like USD",
    "country": "must be a 2-letter ISO 3166 country code, like BY",
    "Idempotency-Key": "must be 1 to 255 printable ASCII characters",
}
_NO_NUL_HINT = "must not contain the NUL character (\\u0000)"
_AT = re.compile(r" - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`$")
_NAMED_FIELD = re.compile(r"^Object (missing required|contains unknown) field `(?P<name>[^`]+)`")


# An order is 3 levels deep (order, items, item); nothing we accept comes near this.
MAX_DEPTH = 16


def decode(body: bytes, type_: type[T]) -> T:
    """The body as `type_`, strictly (an order's prices also checked to be JSON numbers)."""
    if type_ is OrderRequest:
        return decode_new_order(body)  # type: ignore[return-value]
    value, _ = _decode(body, type_)
    return value


def _decode(body: bytes, type_: type[T]) -> tuple[T, object]:
    """The typed value, and the document as written (for what types cannot say)."""
    if depth_over(body, MAX_DEPTH) is not None:
        raise MalformedJson(f"the body is nested more than {MAX_DEPTH} levels deep")
    try:
        value = msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        _raise_if_malformed(body)  # decoding stops at the first error, which may come first
        raise InvalidInput([field_error(str(exc))]) from exc
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"the body is not valid UTF-8: {exc.reason}") from exc
    document = _document(body)
    if (twice := _first_duplicate(document, "")) is not None:
        raise InvalidInput([FieldError(twice, "is given more than once")])
    return value, document


def _raise_if_malformed(body: bytes) -> None:
    """Refuse a body that is not JSON text at all (only its syntax is read, not its numbers)."""
    try:
        body.decode()
        msgspec.json.decode(body, type=msgspec.Raw)
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"the body is not valid UTF-8: {exc.reason}") from exc
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from exc


class _Number(str):
    """The text of a JSON number, told apart from a JSON string."""


def _document(body: bytes) -> object:
    """A valid JSON body as written: members in order with duplicates kept, numbers marked.

    One stdlib pass answers both questions msgspec's typed decode cannot: was a name given
    twice, and was a money field a number or a string?
    """
    return json.loads(body, object_pairs_hook=_Members, parse_int=_Number, parse_float=_Number)


class _Members(list[tuple[str, object]]):
    """An object's members in document order, duplicates kept."""


def _first_duplicate(node: object, path: str) -> str | None:
    children: list[tuple[str, object]] = []
    if isinstance(node, _Members):
        names = [name for name, _ in node]
        for index, name in enumerate(names):
            if name in names[:index]:
                return f"{path}.{name}".lstrip(".")
        children = [(f"{path}.{name}".lstrip("."), value) for name, value in node]
    elif isinstance(node, list):
        children = [(f"{path}[{index}]", value) for index, value in enumerate(node)]
    for child_path, child in children:
        if (found := _first_duplicate(child, child_path)) is not None:
            return found
    return None


def decode_new_order(body: bytes) -> OrderRequest:
    order, document = _decode(body, OrderRequest)
    errors = [
        FieldError(f"items[{index}].price", "must be a JSON number, not a string")
        for index, item in enumerate(_member(document, "items"))
        if not isinstance(_member(item, "price"), _Number)
    ]
    if errors:
        raise InvalidInput(errors)
    return order


def _member(members: object, name: str) -> Any:
    """The value of `name` in an object of `_document` (valid and unique: decoded already)."""
    assert isinstance(members, _Members)
    return next(value for key, value in members if key == name)


def field_error(message: str) -> FieldError:
    """Turn msgspec's `Expected … - at `$.items[0].price`` into a field and a sentence."""
    path, which = "", ""
    if found := _AT.search(message):
        path = found["path"].replace("[...]", "").lstrip(".")  # msgspec's "some dict value"
        message = message[: found.start()]
        if found["key"]:
            which = "a key: "
        elif "[...]" in found["path"]:
            which = "a value: "
    if named := _NAMED_FIELD.match(message):
        path = f"{path}.{named['name']}".lstrip(".")
        message = "is required" if "missing" in message else "is not a field of this object"
    if f"matching regex {NO_NUL!r}" in message:
        message = _NO_NUL_HINT
    elif "matching regex" in message:
        message = _PATTERN_HINTS.get(path.rsplit(".", 1)[-1], "has the wrong format")
    return FieldError(path or "body", which + message)


class JsonResponse(Response[T]):
    """Every JSON body we send, encoded by the events' encoder: money as exact numbers."""

    def render(
        self, content: Any, media_type: str, enc_hook: Serializer = default_serializer
    ) -> bytes:
        if isinstance(content, bytes | str) or not is_json(media_type):
            return super().render(content, media_type, enc_hook)
        return encoder.encode(content)


class StrictBody(MsgspecDTO[S]):
    """A body decoded once, by `decode`, and documented as its plain type."""

    def decode_bytes(self, value: bytes) -> Any:
        return decode(value, self.model_type)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: Any, handler_id: str, schema_creator: Any
    ) -> Reference | Schema:
        """The body's own type, not a DTO's copy of it (nor `X | null` for an optional one)."""
        result: Reference | Schema = schema_creator.for_field_definition(
            FieldDefinition.from_annotation(cls.model_type)
        )
        return result
