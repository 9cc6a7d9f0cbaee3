"""Request bodies: decoded once, by our strict decoder, and documented as their plain type.

Litestar's default path decodes JSON to Python objects first (numbers become
floats) and converts afterwards; money must never pass through a float, and
every body's errors must read the same (`app.http.wire`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar.dto import MsgspecDTO
from litestar.openapi.spec import Reference, Schema

from app.http.wire import decode

T = TypeVar("T", bound=msgspec.Struct)


class StrictBody(MsgspecDTO[T]):
    def decode_bytes(self, value: bytes) -> Any:
        return decode(value, self.model_type)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: Any, handler_id: str, schema_creator: Any
    ) -> Reference | Schema:
        result: Reference | Schema = schema_creator.for_field_definition(field_definition)
        return result
