"""Schemathesis hooks for the fuzz run (loaded through SCHEMATHESIS_HOOKS, see test_fuzz.py).

One check: a request the OpenAPI document calls valid is accepted. Schemathesis's
own `positive_data_acceptance` cannot know the refusals no schema can express, so
this check names them one by one, and every other refusal of a valid request fails.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, Response

PROBLEM = "urn:orders:problem:"

# Refusals a schema-valid request can rightly get: (status, problem type) -> why.
SEMANTIC_REFUSALS = {
    (404, "order-not-found"): "the order id was drawn at random",
    (409, "illegal-transition"): "that order was cancelled already",
    (409, "idempotency-key-in-flight"): "another request holds the key",
    (422, "idempotency-key-reused"): "the key was drawn before, with another body",
}
# Query parameters whose rule is not a schema: a cursor is opaque (only one the API
# issued works), and created_to must not be before created_from.
SEMANTIC_PARAMETERS = {"cursor", "created_to"}
# JSON Schema counts 3.0 as an integer; this API wants an integer written as one.
INTEGER_WRITTEN_AS_FLOAT = "Expected `int`, got `float`"


@schemathesis.check
def valid_requests_are_accepted(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code < 400:
        return None
    problem = _problem(response)
    kind = str(problem.get("type", "")).removeprefix(PROBLEM)
    if (response.status_code, kind) in SEMANTIC_REFUSALS:
        return None
    errors = problem.get("errors") or []
    fields = {error.get("field") for error in errors}
    if kind == "invalid-parameter" and fields and fields <= SEMANTIC_PARAMETERS:
        return None
    if kind == "validation-error" and errors and _all_float_integers(errors):
        return None
    if kind == "validation-error" and _staff_without_customer(errors):
        return None
    raise AssertionError(
        f"a request the OpenAPI document calls valid was refused with {response.status_code} "
        f"{kind or '(no problem type)'}: {problem.get('errors') or problem.get('detail')}"
    )


def _problem(response: Response) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _all_float_integers(errors: list[dict[str, Any]]) -> bool:
    return all(error.get("message") == INTEGER_WRITTEN_AS_FLOAT for error in errors)


def _staff_without_customer(errors: list[dict[str, Any]]) -> bool:
    """`customer_id` is optional for a customer (its own); staff, as the fuzzer is, name one."""
    return bool(errors) and all(
        e.get("field") == "customer_id" and "staff" in str(e.get("message")) for e in errors
    )
