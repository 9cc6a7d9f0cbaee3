"""Who is asking, and what they may do to whose orders.

A principal is what a verified token says: its subject, the customer it speaks for
(if any) and its scopes. The rules are here, framework-free, so that the API and
its tests read one statement of them:

- `orders:read` reads, `orders:write` creates and cancels, `orders:admin` is staff
  and reaches every order (reading, listing, cancelling, creating for anyone);
- anyone else reaches only the orders whose `customer_id` is their own; another
  customer's order does not exist for them (404, no existence leak).
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

import msgspec

from app.domain.errors import FieldError, Forbidden, InvalidInput


class Scope(StrEnum):
    READ = "orders:read"
    WRITE = "orders:write"
    ADMIN = "orders:admin"


class Principal(msgspec.Struct, frozen=True):
    """The verified caller. `customer_id` is None for a staff token without a customer."""

    subject: str
    customer_id: UUID | None
    scopes: frozenset[str]

    def __post_init__(self) -> None:
        # A customer without a customer id would reach nobody's orders, or everybody's
        # where None means "no filter": refuse to make one at all.
        if self.customer_id is None and not self.is_staff:
            raise ValueError("a principal without orders:admin must name its customer")

    @property
    def is_staff(self) -> bool:
        return Scope.ADMIN in self.scopes

    @property
    def actor(self) -> str:
        """What the status history records as the one who acted."""
        return f"staff:{self.subject}" if self.is_staff else f"customer:{self.subject}"

    @property
    def key(self) -> str:
        """The namespace of this principal's idempotency keys (and rate-limit bucket)."""
        return f"sub:{self.subject}"

    def may(self, scope: Scope) -> bool:
        """Staff may do everything; anyone else needs the scope itself."""
        return self.is_staff or scope in self.scopes

    def reaches(self, customer_id: UUID) -> bool:
        """May this principal see or act on an order of `customer_id`?"""
        return self.is_staff or self.customer_id == customer_id

    def listing_filter(self, asked: UUID | None) -> UUID | None:
        """The customer a listing is limited to; Forbidden for someone else's."""
        if self.is_staff:
            return asked
        if asked is not None and asked != self.customer_id:
            raise Forbidden("you may list only your own orders")
        return self.customer_id

    def owner_of_new_order(self, asked: UUID | None) -> UUID:
        """Whose order a create makes: the body's `customer_id`, or the caller's own."""
        if asked is not None and (self.is_staff or asked == self.customer_id):
            return asked
        if asked is None and self.customer_id is not None:
            return self.customer_id
        if asked is None:  # staff acting for nobody in particular: say for whom
            raise InvalidInput([FieldError("customer_id", "is required with a staff token")])
        raise Forbidden("you may create orders only for yourself")


# Used when AUTH_DISABLED=true: every request acts as staff, loudly (see app.http.security).
NOBODY = Principal("anonymous", None, frozenset(Scope))
