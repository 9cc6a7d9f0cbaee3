"""The one seam where driver errors become domain errors, keyed on constraint names."""

from __future__ import annotations

import psycopg
from sqlalchemy.exc import DBAPIError

from app.domain.errors import FieldError, InvalidInput, Refused, Unavailable

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

# SQLSTATEs that mean "the database is not there right now", not "you are wrong": classes
# 08 connection exception, 40 transaction rollback (deadlock, serialization), 53
# insufficient resources, 57 operator intervention (shutdown, cancel, statement timeout),
# 58 system error (I/O); 55P03 lock not available, 55006 object in use, 25006 read-only
# transaction (a failover left us on a standby). Everything else with a SQLSTATE is about
# the statement and its data (22 data, 23 integrity, 54 limits such as an index row too
# large, 42 syntax/privilege, P0 raised by a trigger): the same input fails every time.
# psycopg files class 54 and 57 under OperationalError, so the class decides, not the type.
TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
TRANSIENT_STATES = frozenset({"55P03", "55006", "25006"})


def is_transient(sqlstate: str) -> bool:
    """True if an error with this SQLSTATE may pass if the same statement is tried later."""
    return sqlstate.startswith(TRANSIENT_CLASSES) or sqlstate in TRANSIENT_STATES


def translate(exc: DBAPIError) -> Exception:
    """Map a driver error to a domain error: Unavailable (try again later), InvalidInput
    (a field a client can fix), Refused (this input will always fail); anything without
    a SQLSTATE that is not a lost connection is returned as is."""
    original = exc.orig
    if exc.connection_invalidated:
        return Unavailable("the database is unavailable")
    if not isinstance(original, psycopg.Error):
        return exc
    return _from_psycopg(original) or exc


def _from_psycopg(original: psycopg.Error) -> Exception | None:
    state = original.sqlstate or ""
    if is_transient(state) or (not state and isinstance(original, psycopg.OperationalError)):
        return Unavailable("the database is unavailable")
    constraint = original.diag.constraint_name
    if constraint in CONSTRAINT_ERRORS:
        return InvalidInput([CONSTRAINT_ERRORS[constraint]])
    if isinstance(original, psycopg.DataError) and (
        state == "22P05" or (not state and "NUL" in str(original))
    ):
        return InvalidInput([_UNSTORABLE_TEXT])
    if state:
        return Refused(state, (original.diag.message_primary or str(original))[:500])
    return None
