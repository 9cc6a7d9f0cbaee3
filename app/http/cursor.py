"""Opaque keyset cursors: where the last page ended, as (created_at, id), URL-safe."""

from __future__ import annotations

import base64
import binascii

import msgspec

from app.db.orders import Position
from app.domain.errors import FieldError
from app.http.wire import InvalidParameter


def encode_cursor(position: Position) -> str:
    raw = msgspec.json.encode(position)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=Position)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidParameter([FieldError("cursor", "is not a cursor this API issued")]) from exc
