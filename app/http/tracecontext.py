"""W3C Trace Context headers, checked before they are stored or forwarded.

A caller's `traceparent`/`tracestate` travel into the outbox and on to Kafka, so
they are held to the W3C format and size (https://www.w3.org/TR/trace-context/):
an invalid one is dropped, as the spec asks, never an error. `tracestate` means
nothing without a valid `traceparent`, and is dropped with it.
"""

from __future__ import annotations

import re

# version 00 exactly; later versions may append fields, which we cannot vouch for.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
_KEY = r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(rf"{_KEY}={_VALUE}")
MAX_TRACESTATE = 512
MAX_MEMBERS = 32


def valid_traceparent(values: list[str]) -> str | None:
    """The one `traceparent` sent, if it is well formed."""
    if len(values) != 1 or not _TRACEPARENT.fullmatch(values[0].strip()):
        return None
    return values[0].strip()


def valid_tracestate(values: list[str]) -> str | None:
    """`tracestate` (possibly split over several headers), if every member is well formed."""
    joined = ",".join(values)
    if not joined or len(joined) > MAX_TRACESTATE:
        return None
    members = [member.strip(" \t") for member in joined.split(",")]
    members = [member for member in members if member]  # empty members are allowed
    if not members or len(members) > MAX_MEMBERS:
        return None
    if not all(_MEMBER.fullmatch(member) for member in members):
        return None
    return ",".join(members)
