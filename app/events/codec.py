"""JSON for events and API bodies: money as exact JSON numbers, never floats."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec

encoder = msgspec.json.Encoder(decimal_format="number")
# Untyped decoding (CloudEvents envelopes, event data): JSON floats become exact Decimals.
untyped_decoder = msgspec.json.Decoder(float_hook=Decimal)


def encode(value: object) -> bytes:
    return encoder.encode(value)


def rfc3339(moment: datetime) -> str:
    """UTC with a Z and at most microseconds: what every CloudEvents reader accepts."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
