"""Why a record could not be applied, and what that calls for: one policy for the loop.

- `outage`: the world is down (the database unreachable, shutting down, a deadlock or
  serialization failure). The record is fine: wait and try again, however long it takes.
- `poison`: the record itself is the cause (unreadable, malformed, refused by the database
  for its data or a limit). It would fail every time: straight to the DLQ.
- `unforeseen`: anything else (a bug, a driver error without a SQLSTATE). Tried a bounded
  number of times, then to the DLQ, so its partition moves on either way.
"""

from __future__ import annotations

import traceback
from typing import Literal

from app.domain.errors import InvalidInput, OrdersError, Refused, Unavailable
from app.events.cloudevents import PoisonMessage

Verdict = Literal["outage", "poison", "unforeseen"]
REASON_MAX = 1000


def classify(error: BaseException) -> Verdict:
    if isinstance(error, Unavailable):
        return "outage"
    if isinstance(error, PoisonMessage | Refused | InvalidInput):
        return "poison"
    return "unforeseen"


def reason(error: BaseException) -> str:
    """One line for the DLQ's `dlq_reason` header: what was wrong, bounded in length."""
    if isinstance(error, PoisonMessage):
        text = error.reason
    elif isinstance(error, InvalidInput):
        text = "; ".join(f"{e.field}: {e.message}" for e in error.errors) or str(error)
    elif isinstance(error, OrdersError):  # our own words already say what happened
        text = str(error)
    else:
        text = "".join(traceback.format_exception_only(error)).strip()
    return " ".join(text.split())[:REASON_MAX]
