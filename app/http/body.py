"""A request-body DTO that decodes with our strict decoder but documents the plain type.

Litestar's default path decodes JSON to Python objects first (numbers become
floats) and converts afterwards; money must never pass through a float.
"""

from __future__ import annotations

from typing import Any

from litestar.dto import MsgspecDTO
from litestar.openapi.spec import Reference, Schema

from app.domain.order import NewOrder
from app.http.wire import decode_new_order


class NewOrderBody(MsgspecDTO[NewOrder]):
    def decode_bytes(self, value: bytes) -> Any:
        return decode_new_order(value)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: Any, handler_id: str, schema_creator: Any
    ) -> Reference | Schema:
        result: Reference | Schema = schema_creator.for_field_definition(field_definition)
        return result
