"""Opaque keyset cursors: where the last page ended, as (created_at, id), signed.

A cursor is `<payload>.<mac>`, both URL-safe base64: the MAC is HMAC-SHA256 under
CURSOR_SECRET over the principal it was issued to and the payload, so a cursor
that was altered, forged, or issued to someone else is refused (ForgedCursor) before
its payload is even decoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import msgspec

from app.db.orders import Position

MAC_BYTES = 16  # 128 bits: forging one is out of reach, and the cursor stays short


class ForgedCursor(ValueError):
    """Not a cursor issued to this principal under this secret."""


def encode_cursor(position: Position, *, secret: str, principal: str) -> str:
    payload = _b64(msgspec.json.encode(position))
    return f"{payload}.{_b64(_mac(secret, principal, payload))}"


def decode_cursor(cursor: str, *, secret: str, principal: str) -> Position:
    payload, _, mac = cursor.partition(".")
    try:
        if not hmac.compare_digest(_unb64(mac), _mac(secret, principal, payload)):
            raise ValueError("wrong MAC")
        return msgspec.json.decode(_unb64(payload), type=Position)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise ForgedCursor("not a cursor issued to this principal") from exc


def _mac(secret: str, principal: str, payload: str) -> bytes:
    message = f"{principal}\n{payload}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()[:MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
