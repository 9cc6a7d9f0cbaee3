"""What the OpenAPI document says: real examples, every error shape, every header and limit.

Schemas come from the types (msgspec's own JSON Schema of each struct, `StructSchemas`);
`refine` adds only what no type says: money as JSON numbers, the configured item cap, the
currency list, the response headers, and the examples."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.typing import FieldDefinition

from app.config import HttpSettings
from app.domain import examples
from app.domain.money import CURRENCIES, MAX_PRICE
from app.events.codec import encode
from app.http import request_id
from app.http.problems import KINDS, MEDIA_TYPE, Kind, Problem
from app.http.wire import CANCELLED, CREATED, PARAMETERS_DETAIL


@dataclass
class Verbatim(Example):
    """An example rendered as given: Litestar drops every None from the dicts it renders,
    which would turn `"from_status": null` into a missing (required) member."""

    def to_schema(self) -> dict[str, Any]:
        rendered = super().to_schema()
        rendered["value"] = self.value
        return rendered


REPLAYED = "Idempotent-Replayed"  # on a create that replays what a key stored
_REQUEST_ID = "0f9c4f5e-5b1d-4c53-8f0e-3c2b9d6a7e41"
# The one example order (app/domain/examples.py) as the API returns it.
_ORDER: dict[str, Any] = msgspec.json.decode(
    encode(
        examples.stored(
            UUID("865ca832-c5c6-44b0-b235-37273c65aa19"),
            datetime(2025, 9, 22, 13, 9, 7, 123456, tzinfo=UTC),
        )
    )
)

SUCCESS_EXAMPLES: dict[str, Any] = {
    "created": {"order": _ORDER, "message": CREATED},
    "order": {"order": {**_ORDER, "status": "confirmed", "version": 2}},
    "cancelled": {
        "order": {**_ORDER, "status": "cancelled", "version": 2},
        "message": CANCELLED,
    },
    "page": {"orders": [_ORDER], "next_cursor": "WyIyMDI1LTA5LTIyVDEzOjA5OjA3WiIsIjg2NWNhODMyIl0"},
    "history": {
        "order_id": _ORDER["id"],
        "history": [
            {
                "version": 1,
                "from_status": None,
                "to_status": "pending",
                "cause": "api",
                "cause_id": "550e8400-e29b-41d4-a716-446655440000",
                "reason": None,
                "changed_at": "2025-09-22T13:09:07.123456Z",
            },
            {
                "version": 2,
                "from_status": "pending",
                "to_status": "confirmed",
                "cause": "event",
                "cause_id": "0b7d2c1e-5d5a-4a52-9a55-2f4f9c0b1a11",
                "reason": None,
                "changed_at": "2025-09-22T13:09:07.512345Z",
            },
        ],
    },
}

# One example per problem type (`urn:orders:problem:<slug>`); type, title and status
# come from the error table itself, so the document cannot drift from the responses.
# The instance is the collection unless said otherwise.
_PROBLEM_EXAMPLES: dict[str, dict[str, Any]] = {
    "malformed-json": {"detail": "the body is not valid JSON: Input data was truncated"},
    "invalid-parameter": {
        "detail": PARAMETERS_DETAIL,
        "errors": [{"field": "limit", "message": "must be at most 100"}],
    },
    "order-not-found": {
        "detail": "order 865ca832-c5c6-44b0-b235-37273c65aa19 does not exist",
        "instance": "/api/v1/orders/865ca832-c5c6-44b0-b235-37273c65aa19",
    },
    "not-found": {"detail": "Not Found", "instance": "/api/v1/orders/not-a-uuid"},
    "illegal-transition": {
        "detail": "an order that is shipped cannot become cancelled",
        "instance": "/api/v1/orders/865ca832-c5c6-44b0-b235-37273c65aa19/cancel",
    },
    "idempotency-key-in-flight": {"detail": "a request with this Idempotency-Key is in progress"},
    "payload-too-large": {"detail": "Request Entity Too Large"},
    "unsupported-media-type": {
        "detail": "send the body as JSON, with one Content-Type: application/json"
    },
    "validation-error": {
        "detail": "The request is not valid.",
        "errors": [{"field": "items[0].price", "message": "must have at most 2 decimals"}],
    },
    "idempotency-key-reused": {"detail": "this Idempotency-Key was used with a different request"},
    "unavailable": {"detail": "the database is unavailable"},
    "rate-limited": {"detail": "Too Many Requests"},
    "invalid-token": {"detail": "the token has expired"},
    "insufficient-scope": {"detail": "this operation needs the scope orders:write"},
    "forbidden": {"detail": "you may create orders only for yourself"},
}


def success(container: type, description: str, example: str) -> ResponseSpec:
    return ResponseSpec(
        container,
        description=description,
        generate_examples=False,
        examples=[Verbatim(summary=example, value=SUCCESS_EXAMPLES[example])],
    )


def problems(*slugs: str) -> dict[int, ResponseSpec]:
    """The error responses of an operation, one example for each problem type it can return."""
    by_status: dict[int, list[Kind]] = {}
    for slug in slugs:
        kind = KINDS[slug]
        by_status.setdefault(kind.status, []).append(kind)
    return {
        status: ResponseSpec(
            Problem,
            description=" / ".join(kind.title for kind in kinds),
            media_type=MEDIA_TYPE,
            generate_examples=False,
            examples=[Verbatim(summary=kind.title, value=problem_example(kind)) for kind in kinds],
        )
        for status, kinds in sorted(by_status.items())
    }


def problem_example(kind: Kind) -> dict[str, Any]:
    head = {"type": kind.type, "title": kind.title, "status": kind.status}
    example = {"instance": "/api/v1/orders", **_PROBLEM_EXAMPLES[kind.slug]}
    return {**head, **example, "request_id": _REQUEST_ID}


# --- What the types alone do not say -------------------------------------------------


class StructSchemas(StructSchemaPlugin):
    """A struct's schema as msgspec writes it, so every `Meta` bound, closed object
    (`forbid_unknown_fields`) and key rule in the types is in the document; Litestar still
    registers each component (and what it refers to) under the same name."""

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        _, found = msgspec.json.schema_components([field_definition.type_], ref_template=_REF)
        own = found[field_definition.type_.__name__]
        info = msgspec.inspect.type_info(field_definition.type_)
        for field in info.fields if isinstance(info, msgspec.inspect.StructType) else ():
            if isinstance(field.type, msgspec.inspect.DateTimeType):  # msgspec: only if tz=True
                own["properties"][field.encode_name]["format"] = "date-time"
        schema.properties = own["properties"]
        schema.additional_properties = own.get("additionalProperties")
        return schema


_REF = "#/components/schemas/{name}"
_HEADERS = {
    request_id.NAME: request_id.RESPONSE_HEADER,
    REPLAYED: OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING, enum=["true"]),
        description="`true` when the response is the one stored for this Idempotency-Key",
    ),
    "Retry-After": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER, minimum=0),
        required=True,
        description="Seconds to wait before retrying",
    ),
}
# Request-body examples, by path: Litestar 2 has no hook for them.
_REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "/api/v1/orders": examples.request_body(),
    "/api/v1/orders/{order_id}/cancel": {"reason": "changed my mind"},
}
# Money is a JSON number (exact in and out), never the string Decimal maps to by default.
_MONEY: dict[tuple[str, str], dict[str, Any]] = {
    ("NewItem", "price"): {
        "minimum": 0,
        "maximum": float(MAX_PRICE),
        "multipleOf": 0.01,
        "description": "Unit price: a JSON number (not a string), ≥ 0, at most 2 decimals",
    },
    ("Item", "price"): {"minimum": 0, "description": "Unit price, with 2 decimals"},
    ("Order", "total_amount"): {
        "minimum": 0,
        "description": "The sum of price times quantity, 2 decimals",
    },
}


def refine(openapi: OpenAPI, http: HttpSettings) -> None:
    """Say what the types cannot: exact money, the configured item cap, the currency list,
    the headers, and the examples."""
    schemas = openapi.components.schemas
    for (name, field), money in _MONEY.items():
        _properties(schemas[name])[field] = {"type": "number", **money}
    new_order = _properties(schemas["OrderRequest"])
    new_order["items"]["maxItems"] = http.max_items
    new_order["currency"]["enum"] = sorted(CURRENCIES)
    openapi.components.headers = {**_HEADERS}
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            if isinstance(operation := getattr(item, method), Operation):
                _refine_operation(path, method, operation)


def _refine_operation(path: str, method: str, operation: Operation) -> None:
    """Parameters are absent or a value (`null` is not one); a body has its example (the
    cancel's is optional); every response names its headers; errors are problems, so the
    framework's generic 400 (added to any operation with parameters) goes."""
    for parameter in operation.parameters or []:
        if isinstance(parameter, Parameter):
            parameter.schema = _without_null(parameter.schema)
    if isinstance(body := operation.request_body, RequestBody):
        example = Verbatim(summary="An example", value=_REQUEST_EXAMPLES[path])
        body.content["application/json"].examples = {"example": example}
        body.required = not path.endswith("/cancel")
    responses = operation.responses or {}
    for status, response in list(responses.items()):
        if not isinstance(response, OpenAPIResponse):
            continue
        if status >= "400" and MEDIA_TYPE not in (response.content or {}):
            del responses[status]
            continue
        names = [request_id.NAME, *(["Retry-After"] if status in ("429", "503") else [])]
        if (method, path, status) == ("post", "/api/v1/orders", "201"):
            names.append(REPLAYED)
        refs = {name: Reference(ref=f"#/components/headers/{name}") for name in names}
        response.headers = {**(response.headers or {}), **refs}


def _without_null(schema: Schema | Reference | None) -> Schema | Reference | None:
    """A query parameter is absent or a string: `oneOf [X, null]` is just X (with the
    constraints Litestar puts beside the oneOf)."""
    if not isinstance(schema, Schema) or not schema.one_of or len(schema.one_of) != 2:
        return schema
    kept = [s for s in schema.one_of if not (isinstance(s, Schema) and s.type == OpenAPIType.NULL)]
    if len(kept) != 1:
        return schema
    inner = kept[0]
    if isinstance(inner, Schema):
        inner.max_length = inner.max_length or schema.max_length
        inner.min_length = inner.min_length or schema.min_length
        inner.pattern = inner.pattern or schema.pattern
    return inner


def _properties(schema: Schema) -> dict[str, Any]:
    """A struct's properties, as msgspec wrote them (StructSchemas)."""
    assert schema.properties is not None
    return schema.properties
