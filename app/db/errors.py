"""The one seam where driver errors become domain errors, keyed on constraint names."""

from __future__ import annotations

import psycopg
from sqlalchemy.exc import DBAPIError

from app.domain.errors import FieldError, InvalidInput, Unavailable

# Every named constraint a client's input can break, and what to tell the client.
CONSTRAINT_ERRORS: dict[str, FieldError] = {
    "email_address_valid": FieldError("email", "must be a valid email address"),
    "orders_currency_iso4217": FieldError("currency", "must be a 3-letter ISO 4217 code"),
    "orders_metadata_object": FieldError("metadata", "must be a JSON object"),
    "orders_have_items": FieldError("items", "an order needs at least one item"),
    "orders_total_amount_valid": FieldError("items", "the total must be ≥ 0 with 2 decimals"),
    "orders_total_matches_items": FieldError("total_amount", "must equal the sum of the items"),
    "order_items_price_valid": FieldError("items[].price", "must be ≥ 0 with at most 2 decimals"),
    "order_items_quantity_valid": FieldError("items[].quantity", "must be between 1 and 10000"),
    "order_items_name_length": FieldError("items[].name", "must be 1 to 200 characters"),
    "idempotency_keys_key_length": FieldError("Idempotency-Key", "must be 1 to 255 characters"),
}

# Text PostgreSQL cannot store: U+0000 (refused by psycopg before sending, without a
# SQLSTATE, or by the server as 22P05 in jsonb). The input is wrong, not the server;
# the decoder refuses it first, this only keeps a field that forgets to from being a 500.
_UNSTORABLE_TEXT = FieldError("body", "text must not contain the NUL character (\\u0000)")

# SQLSTATE classes that mean "the database is not there right now", not "you are wrong":
# 08 connection exception, 53 insufficient resources, 57 operator intervention
# (shutdown, cancel), 40 transaction rollback (deadlock, serialization).
_TRANSIENT_CLASSES = ("08", "53", "57", "40")


def translate(exc: DBAPIError) -> Exception:
    """Map a driver error to a domain error; anything unforeseen is returned as is."""
    original = exc.orig
    if exc.connection_invalidated or isinstance(original, psycopg.OperationalError):
        return Unavailable("the database is unavailable")
    if isinstance(original, psycopg.Error):
        state = original.sqlstate or ""
        if state.startswith(_TRANSIENT_CLASSES):
            return Unavailable("the database is unavailable")
        constraint = original.diag.constraint_name
        if constraint in CONSTRAINT_ERRORS:
            return InvalidInput([CONSTRAINT_ERRORS[constraint]])
        if isinstance(original, psycopg.DataError) and (
            state == "22P05" or (not state and "NUL" in str(original))
        ):
            return InvalidInput([_UNSTORABLE_TEXT])
    return exc
