"""Request-body DTOs that decode with our strict decoder but document the plain type.

Litestar's default path decodes JSON to Python objects first (numbers become
floats) and converts afterwards; money must never pass through a float, and
every body's errors must read the same (`app.http.wire`).
"""

from __future__ import annotations

from typing import Any

from litestar.dto import MsgspecDTO
from litestar.openapi.spec import Reference, Schema

from app.domain.order import OrderRequest
from app.http.wire import CancelRequest, decode, decode_new_order


def _plain_schema(field_definition: Any, schema_creator: Any) -> Reference | Schema:
    result: Reference | Schema = schema_creator.for_field_definition(field_definition)
    return result


class NewOrderBody(MsgspecDTO[OrderRequest]):
    def decode_bytes(self, value: bytes) -> Any:
        return decode_new_order(value)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: Any, handler_id: str, schema_creator: Any
    ) -> Reference | Schema:
        return _plain_schema(field_definition, schema_creator)


class CancelBody(MsgspecDTO[CancelRequest]):
    def decode_bytes(self, value: bytes) -> Any:
        return decode(value, CancelRequest)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: Any, handler_id: str, schema_creator: Any
    ) -> Reference | Schema:
        return _plain_schema(field_definition, schema_creator)
