"""RFC 9457 problem details: the one table from exceptions to HTTP responses, served by
Litestar's problem-details plugin (every exception goes through `ProblemError`)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from app.domain.errors import (
    Forbidden,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    IllegalTransition,
    InsufficientScope,
    InvalidInput,
    InvalidToken,
    OrderNotFound,
    Unavailable,
)
from app.http.parameters import explain
from app.http.security import bearer_challenge
from app.http.wire import (
    PARAMETERS_DETAIL,
    InvalidParameter,
    JsonResponse,
    MalformedJson,
    UnsupportedMediaType,
    field_error,
)

log = logging.getLogger("app.http")

MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 2


class FieldProblem(msgspec.Struct, frozen=True):
    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldProblem] | None = None


class Kind(msgspec.Struct, frozen=True):
    status: int
    slug: str
    title: str

    @property
    def type(self) -> str:
        return f"urn:orders:problem:{self.slug}"


# First match wins, so subclasses come before their bases.
VALIDATION = Kind(422, "validation-error", "Invalid request")
INVALID_PARAMETER = Kind(400, "invalid-parameter", "Invalid query parameter")
UNSUPPORTED = Kind(415, "unsupported-media-type", "Unsupported media type")
ERRORS: list[tuple[type[Exception], Kind]] = [
    (MalformedJson, Kind(400, "malformed-json", "Malformed JSON")),
    (UnsupportedMediaType, UNSUPPORTED),
    (InvalidParameter, INVALID_PARAMETER),
    (InvalidInput, VALIDATION),
    (OrderNotFound, Kind(404, "order-not-found", "Order not found")),
    (IllegalTransition, Kind(409, "illegal-transition", "Status change not allowed")),
    (IdempotencyKeyInFlight, Kind(409, "idempotency-key-in-flight", "Request already in progress")),
    (IdempotencyKeyReused, Kind(422, "idempotency-key-reused", "Idempotency-Key reused")),
    (InvalidToken, Kind(401, "invalid-token", "Missing or invalid token")),
    (InsufficientScope, Kind(403, "insufficient-scope", "Insufficient scope")),
    (Forbidden, Kind(403, "forbidden", "Forbidden")),
    (Unavailable, Kind(503, "unavailable", "Service unavailable")),
]
# Errors the framework raises before our code runs (routing, limits, parameters).
HTTP_KINDS: dict[int, Kind] = {
    400: Kind(400, "bad-request", "Bad request"),
    404: Kind(404, "not-found", "Not found"),
    405: Kind(405, "method-not-allowed", "Method not allowed"),
    408: Kind(408, "request-timeout", "Request timeout"),
    413: Kind(413, "payload-too-large", "Request body too large"),
    415: UNSUPPORTED,
    429: Kind(429, "rate-limited", "Too many requests"),
}
INTERNAL = Kind(500, "internal-error", "Internal server error")
# Every kind by its slug, for the OpenAPI document; ours win over the framework's.
KINDS = {kind.slug: kind for kind in [*HTTP_KINDS.values(), *(kind for _, kind in ERRORS)]}


class ProblemError(ProblemDetailsException):
    """The one map: any exception as the problem it is (its text only for those we raise);
    the request fills in where and which."""

    def __init__(self, exc: Exception) -> None:
        self.kind, detail, self.errors = _classify(exc)
        super().__init__(
            detail=detail, status_code=self.kind.status, headers=_headers(self.kind, exc)
        )
        self.error = exc

    def to_response(self, request: Request[Any, Any, Any]) -> JsonResponse[Any]:
        if self.kind.status == 503:  # expected while the database is away: no traceback
            log.warning(
                "request refused", extra={"path": request.url.path, "error": str(self.error)}
            )
        elif self.kind.status >= 500:
            log.error("request failed", exc_info=self.error, extra={"path": request.url.path})
        problem = Problem(
            type=self.kind.type,
            title=self.kind.title,
            status=self.kind.status,
            detail=self.detail,
            instance=request.url.path,
            request_id=request.scope.get("state", {}).get("request_id"),
            errors=self.errors,
        )
        return JsonResponse(
            problem, status_code=problem.status, media_type=MEDIA_TYPE, headers=self.headers
        )


def _headers(kind: Kind, exc: Exception) -> dict[str, str]:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if kind.status == 503 else {}
    if kind.status == 408:  # the rest of the body may still be on its way: do not wait
        headers["Connection"] = "close"
    if isinstance(exc, InvalidToken | InsufficientScope):
        headers["WWW-Authenticate"] = bearer_challenge(exc)
    if isinstance(exc, HTTPException) and exc.headers:
        headers.update(exc.headers)
    return headers


def _classify(exc: Exception) -> tuple[Kind, str, list[FieldProblem] | None]:
    for error_type, kind in ERRORS:
        if isinstance(exc, error_type):
            errors = (
                [FieldProblem(e.field, e.message) for e in exc.errors]
                if isinstance(exc, InvalidInput)
                else None
            )
            return kind, str(exc), errors
    if isinstance(exc, ValidationException):
        return _framework_validation(exc)
    if isinstance(exc, HTTPException):
        kind = HTTP_KINDS.get(exc.status_code, Kind(exc.status_code, "http-error", exc.detail))
        return kind, exc.detail, None
    return INTERNAL, "The server could not complete the request.", None


def _framework_validation(exc: ValidationException) -> tuple[Kind, str, list[FieldProblem]]:
    """Litestar's typed parameters report each bad one as {key, message, source}: a bad
    query parameter is a bad request (400); a bad header or body, a validation error (422)."""
    items = (
        [item for item in exc.extra if isinstance(item, dict)]
        if isinstance(exc.extra, list)
        else []
    )
    errors = [_field_problem(item) for item in items]
    if any(item.get("source") in ("body", "header") for item in items):
        return VALIDATION, "The request is not valid.", errors
    return INVALID_PARAMETER, PARAMETERS_DETAIL, errors


def _field_problem(item: dict[str, Any]) -> FieldProblem:
    """A bad parameter as the rule it breaks; a header's named as sent (the parameter
    `idempotency_key` is the header Idempotency-Key)."""
    name, message = str(item.get("key", "")), str(item.get("message", ""))
    if item.get("source") == "header":
        name = name.replace("_", "-").title()
    if (rule := explain(message)) != message:
        return FieldProblem(name, rule)
    error = field_error(f"{message} - at `$.{name}`")  # a pattern's meaning, if we know it
    return FieldProblem(error.field, error.message)


PROBLEM_DETAILS = ProblemDetailsPlugin(
    ProblemDetailsConfig(exception_to_problem_detail_map={Exception: ProblemError})
)
