"""One exception root for everything the domain refuses.

Driver and framework errors are translated into these at one seam each
(`app.db.errors`, `app.http.problems`); nothing above those seams sees a
psycopg or Litestar exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class OrdersError(Exception):
    """Root of every error this service raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidInput(OrdersError):
    """The input breaks a rule; `errors` names each field and what is wrong with it."""

    def __init__(self, errors: list[FieldError], detail: str = "The request is not valid.") -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class OrderNotFound(OrdersError):
    def __init__(self, order_id: object) -> None:
        super().__init__(f"order {order_id} does not exist")
        self.order_id = order_id


class IllegalTransition(OrdersError):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"an order that is {current} cannot become {target}")
        self.current = current
        self.target = target


@dataclass
class IdempotencyError(OrdersError):
    """Base for Idempotency-Key conflicts."""

    key: str
    message: str = field(default="")

    def __post_init__(self) -> None:
        super().__init__(self.message)


class IdempotencyKeyInFlight(IdempotencyError):
    """A request with this key is being processed right now."""


class IdempotencyKeyReused(IdempotencyError):
    """This key was used before with a different request."""


class Unavailable(OrdersError):
    """A dependency (the database) cannot be reached right now; retry later."""


class Refused(OrdersError):
    """The database refused the statement for a reason the same input meets every time:
    bad data (SQLSTATE class 22), a broken constraint (23), a limit (54), a rule raised by
    a trigger (P0) and the like. Retrying cannot help; the input is what is wrong."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(f"the database refused it (SQLSTATE {sqlstate}): {message}")
        self.sqlstate = sqlstate


class InvalidToken(OrdersError):
    """No usable credentials: missing, malformed, expired, wrongly signed (HTTP 401)."""

    def __init__(self, detail: str, *, sent: bool = True) -> None:
        super().__init__(detail)
        self.sent = sent  # was a token sent at all? (RFC 6750: no error code when not)


class InsufficientScope(OrdersError):
    """The token is good but lacks the scope the operation needs (HTTP 403)."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this operation needs the scope {scope}")
        self.scope = scope


class Forbidden(OrdersError):
    """The caller may not act for that customer (HTTP 403)."""
