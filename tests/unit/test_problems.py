"""The one table from errors to RFC 9457 problem responses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar import Request
from litestar.exceptions import HTTPException, NotFoundException, ValidationException

from app.domain.errors import (
    FieldError,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidInput,
    OrderNotFound,
    Unavailable,
)
from app.http.problems import MEDIA_TYPE, FieldProblem, ProblemError, _classify
from app.http.wire import MalformedJson


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (MalformedJson("the body is not valid JSON"), 400, "malformed-json"),
        (OrderNotFound("5f0c8a8e"), 404, "order-not-found"),
        (IllegalTransition("delivered", "cancelled"), 409, "illegal-transition"),
        (IdempotencyKeyInFlight("key-1", "in progress"), 409, "idempotency-key-in-flight"),
        (IdempotencyKeyReused("key-1", "different body"), 422, "idempotency-key-reused"),
        (Unavailable("the database is unavailable"), 503, "unavailable"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_domain_error_maps_to_its_status(error: Exception, status: int, slug: str) -> None:
    kind, detail, errors = _classify(error)
    assert (kind.status, kind.type) == (status, f"urn:orders:problem:{slug}")
    assert detail == str(error)
    assert errors is None


def test_invalid_input_is_422_with_every_field_error() -> None:
    error = InvalidInput(
        [FieldError("currency", "not ISO 4217"), FieldError("items[1].price", "too many")]
    )
    kind, detail, errors = _classify(error)
    assert kind.status == 422
    assert detail == "The request is not valid."
    assert errors == [
        FieldProblem("currency", "not ISO 4217"),
        FieldProblem("items[1].price", "too many"),
    ]


def test_unknown_error_is_500_without_leaking_its_text() -> None:
    kind, detail, errors = _classify(RuntimeError("password=hunter2 at db.internal"))
    assert kind.status == 500
    assert "hunter2" not in detail
    assert "db.internal" not in detail
    assert errors is None


def test_framework_validation_error_is_400_with_parameter_errors() -> None:
    error = ValidationException(detail="bad query", extra=[{"key": "limit", "message": "> 100"}])
    kind, _, errors = _classify(error)
    assert kind.status == 400
    assert errors == [FieldProblem("limit", "> 100")]


@pytest.mark.parametrize(
    ("error", "status"),
    [(NotFoundException(), 404), (HTTPException(status_code=405, detail="no"), 405)],
)
def test_framework_http_error_keeps_its_status(error: HTTPException, status: int) -> None:
    assert _classify(error)[0].status == status


def request(path: str = "/api/v1/orders") -> Request[Any, Any, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [],
        "server": ("testserver", 80),
        "state": {"request_id": "req-1"},
        "app": None,
    }
    return Request(scope)  # type: ignore[arg-type]


def test_problem_response_is_problem_json_naming_the_request() -> None:
    error = InvalidInput([FieldError("email", "must be a valid email address")])
    response = ProblemError(error).to_response(request())
    assert response.status_code == 422
    assert response.media_type == MEDIA_TYPE
    assert json.loads(response.render(response.content, MEDIA_TYPE)) == {
        "type": "urn:orders:problem:validation-error",
        "title": "Invalid request",
        "status": 422,
        "detail": "The request is not valid.",
        "instance": "/api/v1/orders",
        "request_id": "req-1",
        "errors": [{"field": "email", "message": "must be a valid email address"}],
    }


def test_unavailable_response_says_when_to_retry() -> None:
    response = ProblemError(Unavailable("the database is unavailable")).to_response(request())
    assert response.status_code == 503
    assert response.headers.get("Retry-After") == "2"
