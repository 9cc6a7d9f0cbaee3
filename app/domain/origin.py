"""Where a change came from: an API request or an event, and the trace it belongs to."""

from __future__ import annotations

from typing import Literal

import msgspec

Cause = Literal["api", "event"]


class Origin(msgspec.Struct, frozen=True):
    cause: Cause
    cause_id: str | None = None  # the request id, or the event id that caused the change
    correlation_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    # Who acted, for the status history: "customer:<sub>", "staff:<sub>", or for an event
    # the CloudEvents source that sent it (our own: "consumer", see services.orders).
    actor: str | None = None
